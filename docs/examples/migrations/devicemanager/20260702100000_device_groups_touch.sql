-- Device groups keep updated_at current on every change (the service used to set it itself), and devices
-- record when they last connected; the device list filters by DMS and status.
-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION device_groups_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	NEW.updated_at := now();
	RETURN NEW;
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER device_groups_touch BEFORE UPDATE ON device_groups
	FOR EACH ROW EXECUTE FUNCTION device_groups_touch();
ALTER TABLE devices ADD COLUMN last_connection_ts timestamptz NULL;
CREATE INDEX idx_devices_dms_owner_status ON devices (dms_owner, status);

-- +goose Down
DROP INDEX idx_devices_dms_owner_status;
ALTER TABLE devices DROP COLUMN last_connection_ts;
DROP TRIGGER device_groups_touch ON device_groups;
DROP FUNCTION device_groups_touch();
