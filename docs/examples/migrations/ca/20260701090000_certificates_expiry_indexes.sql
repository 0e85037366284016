-- The CA service's expiry monitor lists the active certificates that expire soon, and the certificate list
-- filters by issuer: index both. CA certificates get a free-text description shown in the UI.
-- +goose Up
CREATE INDEX idx_certificates_active_valid_to ON certificates (valid_to) WHERE status = 'ACTIVE';
CREATE INDEX idx_certificates_issuer_meta_id ON certificates (issuer_meta_id);
ALTER TABLE ca_certificates ADD COLUMN description text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE ca_certificates DROP COLUMN description;
DROP INDEX idx_certificates_issuer_meta_id;
DROP INDEX idx_certificates_active_valid_to;
