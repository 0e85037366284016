-- Database "va": validation authority, one CRL role per CA (keyed by the CA's subject key id).

-- @schema
CREATE TABLE va_role (
	ca_ski text NOT NULL,
	crl_refresh_interval text NULL,
	crl_validity text NULL,
	crl_subject_key_id_signer text NULL,
	crl_regenerate_on_revoke boolean NULL,
	latest_crl_version numeric NULL,
	latest_crl_valid_from timestamptz NULL,
	latest_crl_valid_until timestamptz NULL
);

-- @data
INSERT INTO va_role (
	ca_ski, crl_refresh_interval, crl_validity, crl_subject_key_id_signer, crl_regenerate_on_revoke,
	latest_crl_version, latest_crl_valid_from, latest_crl_valid_until
)
SELECT
	md5('ski:' || k) || left(md5('ski+' || k), 8),
	CASE WHEN mod(k, 3) = 0 THEN '' ELSE '24h' END,
	'48h',
	md5('ski:' || k) || left(md5('ski+' || k), 8),
	CASE mod(k, 3) WHEN 0 THEN NULL WHEN 1 THEN true ELSE false END,
	-- CRL numbers are up to 20 octets: beyond bigint.
	CASE WHEN mod(k, 2) = 0 THEN k * 1000 ELSE 1461501637330902918203684832716283019655932542975 - k END,
	timestamptz '2026-01-01 00:00:00+00' + k * interval '1 hour',
	timestamptz '2026-01-03 00:00:00.123456+00' + k * interval '1 hour'
FROM generate_series(1, %(n_ca)s::bigint) AS k;

-- @constraints
ALTER TABLE va_role ADD CONSTRAINT caid_pkey PRIMARY KEY (ca_ski);
