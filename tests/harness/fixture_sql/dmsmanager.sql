-- Database "dmsmanager": device management services (DMS) and their settings.
-- Section "schema" as at v3.7.0 (00000000000001, 20241230124809 and 20250612100530, both Go, 20251217120000
-- metadata to jsonb, 20260113212700 settings to jsonb). The step to v3.8.0, 20260604110000 (Go), rewrites
-- settings only: no section of its own.

-- @schema
CREATE TABLE dms (
	id text NOT NULL,
	name text NULL,
	metadata text NULL,
	creation_ts timestamptz NULL,
	settings text NULL
);
ALTER TABLE dms ALTER COLUMN metadata TYPE jsonb USING metadata::jsonb;
ALTER TABLE dms ALTER COLUMN settings TYPE jsonb USING settings::jsonb;

-- @data
INSERT INTO dms (id, name, metadata, creation_ts, settings)
SELECT
	'dms-' || lpad(m::text, 4, '0'),
	CASE WHEN mod(m, 3) = 0 THEN 'Fábrica Arrasate — línea ' || m ELSE 'DMS ' || m END,
	CASE WHEN mod(m, 2) = 0 THEN '{}'::jsonb ELSE jsonb_build_object('lamassu.io/dms/owner', 'equipo-ñ', 'index', m) END,
	timestamptz '2024-11-25 10:50:00+00' + m * interval '1 day',
	jsonb_build_object(
		'enrollment_settings', jsonb_build_object(
			'protocol', 'EST_RFC7030',
			'est_rfc7030_settings', jsonb_build_object(
				'auth_mode', 'CLIENT_CERTIFICATE',
				'client_certificate_settings', jsonb_build_object(
					'validation_cas', jsonb_build_array(md5('ca:' || (1 + mod(m, %(n_ca)s)))::uuid::text),
					'chain_level_validation', -1,
					'allow_expired', false)),
			'device_provisioning_profile', jsonb_build_object(
				'icon', 'BiSolidCreditCardFront', 'icon_color', '#25ee32-#222222',
				'metadata', '{}'::jsonb, 'tags', jsonb_build_array('iot', 'sensor')),
			'enrollment_ca', md5('ca:' || (1 + mod(m, %(n_ca)s)))::uuid::text,
			'enable_replaceable_enrollment', mod(m, 2) = 0,
			'registration_mode', 'JITP',
			'verify_csr_signature', true),
		'reenrollment_settings', jsonb_build_object(
			'additional_validation_cas', '[]'::jsonb,
			'reenrollment_delta', '2w',
			'enable_expired_renewal', false,
			'preventive_delta', '1w',
			'critical_delta', '3d',
			'revoke_on_reenrollment', false),
		'server_keygen_settings', jsonb_build_object(
			'enabled', mod(m, 4) = 0,
			'key', jsonb_build_object('type', 'RSA', 'bits', 2048)),
		'ca_distribution_settings', jsonb_build_object(
			'include_enrollment_ca', true,
			'include_system_ca', mod(m, 2) = 1,
			'managed_cas', '[]'::jsonb),
		'issuance_profile_id', md5('profile:' || (1 + mod(m, %(n_profiles)s)))::uuid::text)
FROM generate_series(1, %(n_dms)s::bigint) AS m;

-- @constraints
ALTER TABLE dms ADD CONSTRAINT dms_pkey PRIMARY KEY (id);
