-- REST API credentials (operator/auth.h). One row per credential: the
-- administrator's password (id 'admin', no tenant) or a tenant API key (id
-- the key's public id). Only hashes are stored, never a password or key.
-- A tenant's keys go with its row: the tenant reconciler deletes the row
-- once the namespace is gone, and a tenant created again under the same
-- name must not inherit the old keys.
CREATE TABLE api_credentials (
    id          text PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('admin', 'tenant_key')),
    tenant_id   text REFERENCES tenants (id) ON DELETE CASCADE,
    secret_hash text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    CHECK ((kind = 'admin') = (tenant_id IS NULL))
);
-- Rotation and revocation find a tenant's active keys.
CREATE INDEX api_credentials_tenant ON api_credentials (tenant_id) WHERE revoked_at IS NULL;
