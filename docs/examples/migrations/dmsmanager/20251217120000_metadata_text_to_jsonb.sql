-- Placeholder for Lamassu's upstream migration 20251217120000 (dmsmanager), applied by the service before the
-- move to one database: goose only needs the file to know the version is not gone. Its upstream SQL is
-- not part of this example.
-- +goose Up
SELECT 'up SQL query';

-- +goose Down
SELECT 'down SQL query';
