-- Tenants: one row per tenant; the tenant controller turns each into a
-- namespace with a ResourceQuota. status 'deleting' marks a tenant whose
-- namespace is being torn down, so the row outlives the cleanup.
CREATE TABLE tenants (
    id           text PRIMARY KEY,
    name         text NOT NULL UNIQUE,
    cpu_quota    text,
    memory_quota text,
    pods_quota   integer CHECK (pods_quota >= 0),
    status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deleting')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz
);

-- Every change to a tenant row is announced on channel nimbus_tenants with
-- the tenant id as payload, so the operator reconciles that tenant at once
-- instead of polling the table. An update that changes the id announces
-- both ids: the old one must be cleaned up, the new one created.
CREATE FUNCTION nimbus_tenants_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('nimbus_tenants', OLD.id);
    ELSE
        PERFORM pg_notify('nimbus_tenants', NEW.id);
        IF TG_OP = 'UPDATE' AND OLD.id <> NEW.id THEN
            PERFORM pg_notify('nimbus_tenants', OLD.id);
        END IF;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER tenants_notify
AFTER INSERT OR UPDATE OR DELETE ON tenants
FOR EACH ROW EXECUTE FUNCTION nimbus_tenants_notify();
