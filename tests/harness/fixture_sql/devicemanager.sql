-- Database "devicemanager": devices and device groups.
-- Section "schema" as at v3.7.0 (00000000000001, 20250925120000 Go, 20251217120000 metadata to jsonb,
-- 20260120114735 identity_slot to jsonb), sections "*_v3_8_0" the step to v3.8.0: 20260120114736 (device_groups).

-- @schema
CREATE TABLE devices (
	id text NOT NULL,
	tags text NULL,
	status text NULL,
	icon text NULL,
	icon_color text NULL,
	creation_timestamp timestamptz NULL,
	metadata text NULL,
	dms_owner text NULL,
	identity_slot text NULL,
	extra_slots text NULL,
	events text NULL
);
ALTER TABLE devices ALTER COLUMN metadata TYPE jsonb USING metadata::jsonb;
ALTER TABLE devices ALTER COLUMN identity_slot TYPE jsonb USING identity_slot::jsonb;

-- @schema_v3_8_0
CREATE TABLE device_groups (
	id uuid DEFAULT gen_random_uuid() NOT NULL,
	name text NOT NULL,
	description text NULL,
	parent_id uuid NULL,
	criteria jsonb NOT NULL DEFAULT '[]'::jsonb,
	created_at timestamptz DEFAULT now(),
	updated_at timestamptz DEFAULT now()
);

-- @data
INSERT INTO devices (
	id, tags, status, icon, icon_color, creation_timestamp, metadata, dms_owner, identity_slot, extra_slots, events
)
SELECT
	dev_id,
	CASE mod(d, 4) WHEN 0 THEN NULL WHEN 1 THEN '[]' WHEN 2 THEN '["iot","sensor"]' ELSE '["planta-ñ","línea 3"]' END,
	status,
	'Cg/CgSmartphoneChip',
	CASE WHEN mod(d, 3) = 0 THEN '' ELSE '#25ee32-#222222' END,
	created,
	CASE
		WHEN mod(d, 5) = 0 THEN '{}'::jsonb
		ELSE jsonb_build_object(
			'lamassu.io/devicemanager/location', jsonb_build_object('lat', 43.0643 + mod(d, 100) / 10000.0, 'lon', -2.4900),
			'lamassu.io/devicemanager/note', CASE WHEN mod(d, 7) = 0 THEN 'Ünïcødé — señal ✓ 设备' ELSE '' END)
	END,
	'dms-' || lpad((1 + mod(d, %(n_dms)s))::text, 4, '0'),
	CASE WHEN status = 'NO_IDENTITY' THEN NULL ELSE json_build_object(
		'status', status,
		'active_version', mod(d, 3),
		'type', 'x509',
		'secrets', json_build_object('0', md5('cert:' || (%(n_ca)s + d))),
		'events', json_build_object(to_char(created, 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), json_build_object(
			'type', 'CREATED', 'description', 'Identity Slot Created'))
	) END,
	CASE WHEN mod(d, 6) = 0 THEN '' ELSE '{}' END,
	json_build_object(to_char(created, 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), json_build_object(
		'type', 'CREATED', 'description', 'Device Created. Pending provision'))::text
FROM generate_series(1, %(n_devices)s::bigint) AS d
CROSS JOIN LATERAL (
	SELECT
		CASE WHEN mod(d, 37) = 0 THEN 'dispositivo-ñandú-' ELSE 'device-' END || lpad(d::text, 8, '0') AS dev_id,
		timestamptz '2024-11-25 11:00:00+00' + d * interval '2 minutes' AS created,
		CASE mod(d, 10)
			WHEN 0 THEN 'NO_IDENTITY'
			WHEN 1 THEN 'RENEWAL_PENDING'
			WHEN 2 THEN 'REVOKED'
			WHEN 3 THEN 'DECOMMISSIONED'
			ELSE 'ACTIVE'
		END AS status
) AS r;

-- @data_v3_8_0
-- Groups form trees: group g > 2 hangs under group g / 3, so chains reach depth log3(n).
INSERT INTO device_groups (id, name, description, parent_id, criteria, created_at, updated_at)
SELECT
	md5('group:' || g)::uuid,
	CASE mod(g, 3) WHEN 0 THEN 'Grupo Ñandú ' WHEN 1 THEN 'group-' ELSE '设备组 ' END || g,
	CASE mod(g, 4) WHEN 0 THEN NULL WHEN 1 THEN '' ELSE 'Dispositivos de la línea ' || g END,
	CASE WHEN g <= 2 THEN NULL ELSE md5('group:' || (g / 3))::uuid END,
	CASE
		WHEN mod(g, 2) = 0 THEN '[]'::jsonb
		ELSE jsonb_build_array(
			jsonb_build_object('field', 'tags', 'operator', 'contains', 'value', 'sensor'),
			jsonb_build_object('field', 'dms_owner', 'operator', 'eq', 'value', 'dms-' || lpad((1 + mod(g, %(n_dms)s))::text, 4, '0')))
	END,
	timestamptz '2025-09-25 12:00:00+00' + g * interval '1 hour',
	timestamptz '2025-09-25 12:00:00+00' + g * interval '1 hour' + mod(g, 5) * interval '1 day'
FROM generate_series(1, %(n_groups)s::bigint) AS g;

-- @constraints
ALTER TABLE devices ADD CONSTRAINT devices_pkey PRIMARY KEY (id);

-- @constraints_v3_8_0
ALTER TABLE device_groups ADD CONSTRAINT device_groups_pkey PRIMARY KEY (id);
ALTER TABLE device_groups ADD CONSTRAINT device_groups_name_key UNIQUE (name);
ALTER TABLE device_groups ADD CONSTRAINT device_groups_parent_id_fkey
	FOREIGN KEY (parent_id) REFERENCES device_groups (id) ON DELETE CASCADE;
CREATE INDEX idx_device_groups_parent_id ON device_groups (parent_id);
CREATE INDEX idx_device_groups_criteria ON device_groups USING gin (criteria);
