-- Database "ca": certificates, CA certificates, issuance profiles.
-- Tables as the upstream migrations of lamassuiot engines/storage/postgres/migrations/ca left them:
-- section "schema" at v3.7.0 (through 20251217120000), sections "*_v3_8_0" the steps to v3.8.0
-- (20260331120000, 20260520120000). ca_certificate_requests (20250115095852) is gone:
-- 20251106000000 dropped it, before v3.7.0.
-- Row i of certificates is a CA for i <= n_ca, a device certificate otherwise.

-- @schema
-- 00000000000001 with the renames of 20241223183344 (key_meta_*, text revocation_reason), 20250107164937
-- (is_ca), 20250226114600 (Go: key_id became subject_key_id, authority key and issuer columns) and
-- 20250704101200 (version_schema); metadata becomes jsonb below (20251217120000).
CREATE TABLE certificates (
	serial_number text NOT NULL,
	metadata text NULL,
	issuer_meta_serial_number text NULL,
	issuer_meta_id text NULL,
	issuer_meta_level int8 NULL,
	status text NULL,
	certificate text NULL,
	key_meta_type text NULL,
	key_meta_bits int8 NULL,
	key_meta_strength text NULL,
	subject_common_name text NULL,
	subject_organization text NULL,
	subject_organization_unit text NULL,
	subject_country text NULL,
	subject_state text NULL,
	subject_locality text NULL,
	valid_from timestamptz NULL,
	valid_to timestamptz NULL,
	revocation_timestamp timestamptz NULL,
	revocation_reason text NULL,
	"type" text NULL,
	engine_id text NULL,
	subject_key_id varchar NULL,
	is_ca boolean NULL,
	authority_key_id varchar NULL,
	issuer_common_name varchar NULL,
	issuer_organization varchar NULL,
	issuer_organization_unit varchar NULL,
	issuer_country varchar NULL,
	issuer_state varchar NULL,
	issuer_locality varchar NULL,
	version_schema varchar NULL
);

-- 20241223183344 cut ca_certificates down to the CA's own facts and a validity; 20250908074250 (Go)
-- moved the validity into issuance profiles (profile_id) and dropped it: dropped attributes stay behind.
CREATE TABLE ca_certificates (
	serial_number text NOT NULL,
	metadata text NULL,
	id text NOT NULL,
	creation_ts timestamptz NULL,
	"level" int8 NULL,
	validity_type text NULL,
	validity_time timestamptz NULL,
	validity_duration text NULL
);
ALTER TABLE ca_certificates ADD COLUMN profile_id varchar;
ALTER TABLE ca_certificates DROP COLUMN validity_type, DROP COLUMN validity_duration, DROP COLUMN validity_time;

-- 20250702124800: the key size lists were created nullable with an empty-object default.
CREATE TABLE issuance_profiles (
	id text NOT NULL,
	name text NOT NULL,
	description text,
	validity_type text NOT NULL,
	validity_time timestamptz NULL,
	validity_duration text NULL,
	sign_as_ca boolean NOT NULL DEFAULT false,
	honor_key_usage boolean NOT NULL DEFAULT true,
	key_usage text NOT NULL DEFAULT '{}',
	honor_extended_key_usages boolean NOT NULL DEFAULT true,
	extended_key_usages text NOT NULL DEFAULT '{}',
	honor_subject boolean NOT NULL DEFAULT true,
	subject_common_name text NOT NULL DEFAULT '',
	subject_organization text DEFAULT '',
	subject_organization_unit text DEFAULT '',
	subject_country text DEFAULT '',
	subject_state text DEFAULT '',
	subject_locality text DEFAULT '',
	honor_extensions boolean NOT NULL DEFAULT true,
	crypto_enforcement_enabled boolean NOT NULL DEFAULT false,
	crypto_enforcement_allow_rsa_keys boolean NOT NULL DEFAULT true,
	crypto_enforcement_allowed_rsa_key_sizes text DEFAULT '{}',
	crypto_enforcement_allow_ecdsa_keys boolean NOT NULL DEFAULT true,
	crypto_enforcement_allowed_ecdsa_key_sizes text DEFAULT '{}'
);

-- 20251217120000 (in v3.7.0): metadata from text to jsonb (the tables are still empty here).
ALTER TABLE ca_certificates ALTER COLUMN metadata TYPE jsonb USING metadata::jsonb;
ALTER TABLE certificates ALTER COLUMN metadata TYPE jsonb USING metadata::jsonb;

-- @schema_v3_8_0
-- 20260331120000 (Go): the certificate extensions as jsonb lists; version_schema dropped (a dropped attribute).
ALTER TABLE certificates
	ADD COLUMN extensions_key_usage jsonb NOT NULL DEFAULT '[]'::jsonb,
	ADD COLUMN extensions_extended_key_usage jsonb NOT NULL DEFAULT '[]'::jsonb;
ALTER TABLE certificates DROP COLUMN version_schema;
-- 20260520120000 as this project models it: the key size lists become NOT NULL with an empty-list default.
ALTER TABLE issuance_profiles
	ALTER COLUMN crypto_enforcement_allowed_rsa_key_sizes SET DEFAULT '[]',
	ALTER COLUMN crypto_enforcement_allowed_rsa_key_sizes SET NOT NULL,
	ALTER COLUMN crypto_enforcement_allowed_ecdsa_key_sizes SET DEFAULT '[]',
	ALTER COLUMN crypto_enforcement_allowed_ecdsa_key_sizes SET NOT NULL;

-- @chunk
WITH pool AS MATERIALIZED (
	-- 256 kB of deterministic pseudo-random bytes: certificates cut from it do not compress.
	SELECT string_agg(sha256(int4send(g)), ''::bytea ORDER BY g) AS p FROM generate_series(1, 8192) AS g
)
INSERT INTO certificates (
	serial_number, metadata, issuer_meta_serial_number, issuer_meta_id, issuer_meta_level, status, certificate,
	key_meta_type, key_meta_bits, key_meta_strength,
	subject_common_name, subject_organization, subject_organization_unit, subject_country, subject_state,
	subject_locality, valid_from, valid_to, revocation_timestamp, revocation_reason, "type", engine_id,
	subject_key_id, is_ca, authority_key_id, issuer_common_name, issuer_organization, issuer_organization_unit,
	issuer_country, issuer_state, issuer_locality
)
SELECT
	md5('cert:' || i),
	CASE
		WHEN mod(i, 10) = 0 THEN '{}'::jsonb
		WHEN i <= %(n_ca)s THEN jsonb_build_object('lamassu.io/certificate/links', '[]'::jsonb, 'lamassu.io/ca/level', lvl)
		ELSE jsonb_build_object(
			'lamassu.io/certificate/links', '[]'::jsonb,
			'lamassu.io/ra/dms', 'dms-' || lpad((1 + mod(i, %(n_dms)s))::text, 4, '0'),
			'lamassu.io/device/id', dev_id,
			'lamassu.io/renewal', jsonb_build_object('count', mod(i, 5), 'auto', mod(i, 3) = 0),
			'nota', CASE WHEN mod(i, 7) = 0 THEN 'Renovación automática — «prüfung» ✓ 证书' END)
	END,
	md5('cert:' || k_iss),
	md5('ca:' || k_iss)::uuid::text,
	CASE WHEN k_iss <= 2 THEN 0 ELSE 1 END,
	status,
	replace(encode(convert_to(
		'-----BEGIN CERTIFICATE-----' || E'\n'
		|| encode(sha256(int8send(i)) || substr(pool.p, (1 + mod(i * 7919, 200000))::int, (480 + mod(i * 104729, 1100))::int), 'base64')
		|| E'\n-----END CERTIFICATE-----\n', 'UTF8'), 'base64'), E'\n', ''),
	CASE WHEN mod(i, 4) = 0 THEN 'ECDSA' ELSE 'RSA' END,
	CASE WHEN mod(i, 4) = 0 THEN 256 WHEN i <= %(n_ca)s THEN 4096 ELSE 2048 END,
	CASE WHEN i <= %(n_ca)s THEN 'HIGH' WHEN mod(i, 4) = 0 THEN 'MEDIUM' ELSE 'LOW' END,
	CASE WHEN i <= %(n_ca)s THEN ca_name ELSE dev_id END,
	CASE mod(i, 5) WHEN 0 THEN NULL WHEN 1 THEN '' ELSE 'Lamassu IoT' END,
	CASE mod(i, 6) WHEN 0 THEN 'Fábrica Nº 3' WHEN 1 THEN NULL ELSE '' END,
	CASE WHEN mod(i, 8) = 0 THEN '' ELSE 'ES' END,
	CASE WHEN mod(i, 8) = 0 THEN '' ELSE 'Gipuzkoa' END,
	CASE WHEN mod(i, 9) = 0 THEN NULL ELSE 'Arrasate-Mondragón' END,
	valid_from,
	valid_from + CASE WHEN i <= %(n_ca)s THEN interval '10 years' ELSE interval '365 days' END,
	CASE WHEN status = 'REVOKED' THEN valid_from + interval '30 days' ELSE timestamptz '0001-01-01 00:00:00+00' END,
	CASE WHEN status = 'REVOKED' THEN (ARRAY['KeyCompromise', 'Superseded', 'CessationOfOperation'])[1 + mod(i, 3)::int]
		ELSE 'Unspecified' END,
	ctype,
	CASE WHEN ctype = 'MANAGED' THEN 'filesystem-1' WHEN ctype = 'IMPORTED' THEN '' END,
	md5('ski:' || i) || left(md5('ski+' || i), 8),
	i <= %(n_ca)s,
	CASE WHEN i <= 2 THEN NULL ELSE md5('ski:' || k_iss) || left(md5('ski+' || k_iss), 8) END,
	'Lamassu CA ' || k_iss,
	'Lamassu IoT',
	CASE WHEN k_iss <= 2 THEN 'Raíz' ELSE '' END,
	'ES',
	'',
	'Arrasate-Mondragón'
FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS i
CROSS JOIN pool
CROSS JOIN LATERAL (
	SELECT
		CASE WHEN i > %(n_ca)s THEN 1 + mod(i, %(n_ca)s) WHEN i <= 2 THEN i ELSE 1 + mod(i, 2) END AS k_iss,
		CASE WHEN i <= 2 THEN 0 ELSE 1 END AS lvl,
		CASE WHEN i = 3 THEN 'Autoridad de Certificación «Ñandú» 认证' ELSE 'Lamassu CA ' || i END AS ca_name,
		CASE WHEN mod(1 + mod(i - 1, %(n_devices)s), 37) = 0 THEN 'dispositivo-ñandú-' ELSE 'device-' END
			|| lpad((1 + mod(i - 1, %(n_devices)s))::text, 8, '0') AS dev_id,
		timestamptz '2024-11-25 10:45:48.62+00' + i * interval '37 seconds' AS valid_from,
		CASE
			WHEN i <= %(n_ca)s THEN 'MANAGED'
			WHEN mod(i, 9) = 0 THEN 'EXTERNAL'
			WHEN mod(i, 9) = 1 THEN 'IMPORTED'
			ELSE 'MANAGED'
		END AS ctype,
		CASE
			WHEN i <= %(n_ca)s THEN 'ACTIVE'
			WHEN mod(i, 17) = 0 THEN 'REVOKED'
			WHEN mod(i, 11) = 0 THEN 'EXPIRED'
			ELSE 'ACTIVE'
		END AS status
) AS r;

-- @data
INSERT INTO ca_certificates (serial_number, id, creation_ts, "level", metadata, profile_id)
SELECT
	md5('cert:' || k),
	md5('ca:' || k)::uuid::text,
	timestamptz '2024-11-25 10:45:48.62+00' + k * interval '37 seconds',
	CASE WHEN k <= 2 THEN 0 ELSE 1 END,
	CASE mod(k, 4)
		WHEN 0 THEN '{}'::jsonb
		WHEN 1 THEN jsonb_build_object('lamassu.io/iot/aws.123456789012', jsonb_build_object(
			'registration', jsonb_build_object('status', 'SUCCEEDED', 'primary_account', true, 'error', ''),
			'arn', 'arn:aws:iot:eu-west-1:123456789012:cacert/' || md5('aws:' || k)))
		WHEN 2 THEN jsonb_build_object('lamassu.io/ra/attached-to', jsonb_build_array('dms-' || lpad((1 + mod(k, %(n_dms)s))::text, 4, '0')))
		ELSE jsonb_build_object('descripción', 'Autoridad de certificación Nº ' || k || ' — «raíz» ✓')
	END,
	CASE WHEN mod(k, 5) = 0 THEN NULL ELSE md5('profile:' || (1 + mod(k, %(n_profiles)s)))::uuid::text END
FROM generate_series(1, %(n_ca)s::bigint) AS k;

-- Two profiles as the service creates them: only the required columns, the rest from the column defaults.
INSERT INTO issuance_profiles (id, name, validity_type, validity_duration)
SELECT md5('profile:' || p)::uuid::text, 'Perfil mínimo ' || p, 'Duration', '90d'
FROM generate_series(1, 2) AS p;

INSERT INTO issuance_profiles (
	id, name, description, validity_type, validity_time, validity_duration, sign_as_ca, honor_key_usage, key_usage,
	honor_extended_key_usages, extended_key_usages, honor_subject, subject_common_name, subject_organization,
	subject_organization_unit, subject_country, subject_state, subject_locality, honor_extensions,
	crypto_enforcement_enabled, crypto_enforcement_allow_rsa_keys, crypto_enforcement_allowed_rsa_key_sizes,
	crypto_enforcement_allow_ecdsa_keys, crypto_enforcement_allowed_ecdsa_key_sizes
)
SELECT
	md5('profile:' || p)::uuid::text,
	'Auto Profile for CA ' || md5('ca:' || p)::uuid::text,
	CASE mod(p, 3) WHEN 0 THEN NULL WHEN 1 THEN '' ELSE 'Default Profile created automatically — perfil «por defecto»' END,
	CASE WHEN mod(p, 2) = 0 THEN 'Time' ELSE 'Duration' END,
	CASE WHEN mod(p, 2) = 0 THEN timestamptz '2030-01-01 00:00:00+00' + p * interval '1 day' END,
	CASE WHEN mod(p, 2) = 0 THEN NULL ELSE (1 + mod(p, 5))::text || 'y' END,
	mod(p, 7) = 0,
	true,
	'["DigitalSignature","KeyEncipherment"]',
	mod(p, 2) = 0,
	'["ClientAuth","ServerAuth"]',
	true,
	'',
	CASE WHEN mod(p, 4) = 0 THEN 'Lamassu IoT' ELSE '' END,
	'',
	CASE WHEN mod(p, 4) = 0 THEN 'ES' ELSE '' END,
	'',
	'',
	true,
	mod(p, 3) <> 0,
	true,
	'[2048,3072,4096]',
	mod(p, 5) <> 0,
	'[256,384,521]'
FROM generate_series(3, %(n_profiles)s::bigint) AS p;

-- @constraints
ALTER TABLE certificates ADD CONSTRAINT certificates_pkey PRIMARY KEY (serial_number);
ALTER TABLE ca_certificates ADD CONSTRAINT ca_certificates_pkey PRIMARY KEY (serial_number, id);
ALTER TABLE ca_certificates ADD CONSTRAINT fk_serial_number
	FOREIGN KEY (serial_number) REFERENCES certificates (serial_number) ON DELETE CASCADE;
ALTER TABLE issuance_profiles ADD CONSTRAINT issuance_profiles_pkey PRIMARY KEY (id);

-- @finish_v3_8_0
-- 20260331120000 (Go) read the extensions from each certificate; here CAs and every 16th device certificate.
UPDATE certificates SET extensions_key_usage = '["CertSign","CRLSign"]'::jsonb WHERE is_ca;
UPDATE certificates
SET extensions_key_usage = '["DigitalSignature","KeyEncipherment"]'::jsonb, extensions_extended_key_usage = '["ClientAuth"]'::jsonb
WHERE NOT is_ca AND right(serial_number, 1) = '7';
