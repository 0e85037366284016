-- Key rotation: every key records its rotation policy and the key it replaced. Keys tagged "ca" rotate
-- yearly; the others keep an empty policy (no rotation) until an operator sets one.
-- +goose Up
ALTER TABLE kms_keys
	ADD COLUMN rotation_policy jsonb NOT NULL DEFAULT '{}'::jsonb,
	ADD COLUMN rotated_from text NULL;
ALTER TABLE kms_keys ADD CONSTRAINT kms_keys_rotated_from_fkey
	FOREIGN KEY (rotated_from) REFERENCES kms_keys (key_id) ON DELETE SET NULL;
UPDATE kms_keys SET rotation_policy = jsonb_build_object('period', 'P1Y') WHERE tags @> '["ca"]'::jsonb;

-- +goose Down
ALTER TABLE kms_keys DROP CONSTRAINT kms_keys_rotated_from_fkey;
ALTER TABLE kms_keys DROP COLUMN rotated_from, DROP COLUMN rotation_policy;
