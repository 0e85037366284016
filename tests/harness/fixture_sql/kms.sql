-- Database "kms": keys. Created as 00000000000001 did, then reshaped as 20251031174938 did,
-- so the dropped columns "id" and "status" stay behind as dropped attributes.

-- @schema
CREATE TABLE kms_keys (
	id text NOT NULL,
	name text NOT NULL,
	algorithm text NOT NULL,
	size int8 NOT NULL,
	public_key text NOT NULL,
	status text NOT NULL,
	creation_ts timestamptz NULL,
	metadata jsonb NULL
);
ALTER TABLE kms_keys
	ADD COLUMN engine_id text,
	ADD COLUMN key_id text;
ALTER TABLE kms_keys DROP COLUMN id;
ALTER TABLE kms_keys
	ADD COLUMN aliases jsonb DEFAULT '[]'::jsonb,
	ADD COLUMN has_private_key boolean DEFAULT true,
	ADD COLUMN tags jsonb DEFAULT '[]'::jsonb;
ALTER TABLE kms_keys DROP COLUMN status;

-- @data
WITH pool AS MATERIALIZED (
	SELECT string_agg(sha256(int4send(g)), ''::bytea ORDER BY g) AS p FROM generate_series(1, 1024) AS g
)
INSERT INTO kms_keys (name, algorithm, size, public_key, creation_ts, metadata, engine_id, key_id, aliases, has_private_key, tags)
SELECT
	CASE WHEN q <= %(n_ca)s THEN 'Lamassu CA ' || q ELSE 'clave-' || q || CASE WHEN mod(q, 6) = 0 THEN ' «ñ»' ELSE '' END END,
	CASE WHEN mod(q, 3) = 0 THEN 'ECDSA' ELSE 'RSA' END,
	CASE WHEN mod(q, 3) = 0 THEN 256 ELSE 4096 END,
	encode(substr(pool.p, (1 + mod(q * 7919, 30000))::int, CASE WHEN mod(q, 3) = 0 THEN 91 ELSE 550 END), 'base64'),
	timestamptz '2024-11-25 10:45:00+00' + q * interval '10 minutes',
	CASE WHEN mod(q, 2) = 0 THEN '{}'::jsonb ELSE jsonb_build_object('lamassu.io/kms/usage', 'firma', 'q', q) END,
	CASE WHEN mod(q, 5) = 0 THEN 'pkcs11-1' ELSE 'filesystem-1' END,
	CASE WHEN q <= %(n_ca)s THEN md5('ski:' || q) || left(md5('ski+' || q), 8) ELSE md5('key:' || q) END,
	CASE WHEN mod(q, 3) = 0 THEN jsonb_build_array('alias-' || q, 'alias-ñ-' || q) ELSE '[]'::jsonb END,
	mod(q, 7) <> 0,
	CASE WHEN mod(q, 2) = 0 THEN '["ca"]'::jsonb ELSE '[]'::jsonb END
FROM generate_series(1, %(n_keys)s::bigint) AS q
CROSS JOIN pool
WHERE mod(q, 4) <> 0;

-- Every fourth key as an older service version wrote it: aliases, has_private_key and tags from the defaults.
WITH pool AS MATERIALIZED (
	SELECT string_agg(sha256(int4send(g)), ''::bytea ORDER BY g) AS p FROM generate_series(1, 1024) AS g
)
INSERT INTO kms_keys (name, algorithm, size, public_key, creation_ts, metadata, engine_id, key_id)
SELECT
	CASE WHEN q <= %(n_ca)s THEN 'Lamassu CA ' || q ELSE 'clave-' || q END,
	'RSA',
	2048,
	encode(substr(pool.p, (1 + mod(q * 7919, 30000))::int, 294), 'base64'),
	timestamptz '2024-11-25 10:45:00+00' + q * interval '10 minutes',
	NULL,
	'filesystem-1',
	CASE WHEN q <= %(n_ca)s THEN md5('ski:' || q) || left(md5('ski+' || q), 8) ELSE md5('key:' || q) END
FROM generate_series(1, %(n_keys)s::bigint) AS q
CROSS JOIN pool
WHERE mod(q, 4) = 0;

-- @constraints
ALTER TABLE kms_keys ADD CONSTRAINT keys_pkey PRIMARY KEY (key_id);
