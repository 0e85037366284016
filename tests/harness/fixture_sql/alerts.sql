-- Database "alerts": the last event of each type and the users' subscriptions.

-- @schema
CREATE TABLE events (
	event_type text NOT NULL,
	"event" text NULL,
	last_seen timestamptz NULL,
	total_seen int8 NULL
);
CREATE TABLE subscriptions (
	id text NOT NULL,
	user_id text NULL,
	event_type text NULL,
	subscription_date timestamptz NULL,
	conditions text NULL,
	channel text NULL
);

-- @data
INSERT INTO events (event_type, "event", last_seen, total_seen)
SELECT
	et,
	CASE WHEN mod(e, 5) = 0 THEN NULL ELSE json_build_object(
		'specversion', '1.0',
		'id', md5('event:' || e)::uuid::text,
		'source', 'lamassuiot.io/ca',
		'type', et,
		'time', to_char(timestamptz '2025-01-01 00:00:00+00' + e * interval '1 hour', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
		'datacontenttype', 'application/json',
		'data', json_build_object('serial_number', md5('cert:' || e), 'comentario', 'evento «ñ» ✓'))::text END,
	timestamptz '2025-01-01 00:00:00+00' + e * interval '1 hour',
	CASE WHEN mod(e, 7) = 0 THEN NULL ELSE e * 13 END
FROM generate_series(1, %(n_events)s::bigint) AS e
CROSS JOIN LATERAL (
	SELECT coalesce(
		(ARRAY['ca.create', 'ca.update.status', 'ca.update.metadata', 'certificate.create',
		       'certificate.update.status', 'certificate.update.metadata', 'device.create',
		       'device.update.status', 'dms.create', 'dms.update'])[e],
		'lamassu.custom.event.' || e) AS et
) AS t;

INSERT INTO subscriptions (id, user_id, event_type, subscription_date, conditions, channel)
SELECT
	md5('subscription:' || s)::uuid::text,
	CASE WHEN mod(s, 9) = 0 THEN '' ELSE 'user-' || mod(s, 50) || '@lamassu.io' END,
	CASE WHEN mod(s, 2) = 0 THEN 'certificate.update.status' ELSE 'device.update.status' END,
	timestamptz '2025-02-01 08:00:00+00' + s * interval '17 minutes',
	CASE WHEN mod(s, 3) = 0 THEN NULL ELSE '[{"type":"JSON-SCHEMA","condition":"{\"type\":\"object\"}"}]' END,
	json_build_object(
		'type', CASE WHEN mod(s, 2) = 0 THEN 'EMAIL' ELSE 'WEBHOOK' END,
		'name', 'Canal ' || s || ' — ñ',
		'config', CASE WHEN mod(s, 2) = 0
			THEN json_build_object('email', 'ops+' || s || '@lamassu.io')
			ELSE json_build_object('url', 'https://hooks.example.com/' || md5('hook:' || s), 'method', 'POST') END)::text
FROM generate_series(1, %(n_subscriptions)s::bigint) AS s;

-- @constraints
ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY (event_type);
ALTER TABLE subscriptions ADD CONSTRAINT subscriptions_pkey PRIMARY KEY (id);
