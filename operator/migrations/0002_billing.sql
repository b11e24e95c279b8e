-- Billing (operator/billing.h). Usage is kept per pod and interval, and
-- nothing references tenants: a tenant's usage and invoices outlive the
-- tenant row, which the tenant reconciler deletes after its namespace.

-- When billing first ran against this database. No pod is billed for time
-- before it, so turning billing on does not bill pods' earlier lives.
CREATE TABLE billing_epoch (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    started_at timestamptz NOT NULL DEFAULT now()
);

-- One row per pod and sampling interval, integrated with the trapezoid
-- rule: CPU in milli-core-seconds, memory in byte-seconds, exact to six
-- decimals. Written with ON CONFLICT DO NOTHING on the key, so writing a
-- row again changes nothing. A row belongs to the invoice period that
-- contains its window_end.
CREATE TABLE billing_usage (
    tenant_id           text NOT NULL,
    pod_uid             text NOT NULL,
    window_start        timestamptz NOT NULL,
    window_end          timestamptz NOT NULL,
    cpu_milli_seconds   numeric(38, 6) NOT NULL CHECK (cpu_milli_seconds >= 0),
    memory_byte_seconds numeric(38, 6) NOT NULL CHECK (memory_byte_seconds >= 0),
    recorded_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, pod_uid, window_start),
    CHECK (window_end > window_start)
);
-- Invoices and usage sum a tenant's rows by window_end.
CREATE INDEX billing_usage_tenant_end ON billing_usage (tenant_id, window_end);

-- Each pod's last committed sample: the end of its last row and its rate
-- there. Updated in the same transaction as the rows, and only by a row
-- that starts at or after it, so after a restart the next interval starts
-- exactly where the committed rows end, and a row that would overlap
-- committed ones (a second writer, a replay) is refused. closed: the pod
-- ended at last_sample; kept a week so that the refusal still holds, then
-- purged by the sampler.
CREATE TABLE billing_pod_state (
    pod_uid      text PRIMARY KEY,
    tenant_id    text NOT NULL,
    namespace    text NOT NULL,
    pod_name     text NOT NULL,
    last_sample  timestamptz NOT NULL,
    cpu_nano     bigint NOT NULL CHECK (cpu_nano >= 0),
    memory_bytes bigint NOT NULL CHECK (memory_bytes >= 0),
    closed       boolean NOT NULL DEFAULT false,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Issued invoices: written the first time a closed period is asked for,
-- then returned as stored (immutable), whatever rows or prices come later.
-- Amounts are in the currency's minor unit (cents for USD); prices in
-- millionths of the currency unit.
CREATE TABLE invoices (
    tenant_id           text NOT NULL,
    period_start        timestamptz NOT NULL,
    period_end          timestamptz NOT NULL,
    currency            text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    minor_digits        integer NOT NULL CHECK (minor_digits BETWEEN 0 AND 3),
    cpu_milli_seconds   numeric(38, 6) NOT NULL,
    memory_byte_seconds numeric(38, 6) NOT NULL,
    cpu_price_micro     bigint NOT NULL CHECK (cpu_price_micro >= 0),
    memory_price_micro  bigint NOT NULL CHECK (memory_price_micro >= 0),
    cpu_amount_minor    bigint NOT NULL CHECK (cpu_amount_minor >= 0),
    memory_amount_minor bigint NOT NULL CHECK (memory_amount_minor >= 0),
    total_minor         bigint NOT NULL CHECK (total_minor = cpu_amount_minor + memory_amount_minor),
    issued_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, period_start, period_end),
    CHECK (period_end > period_start)
);
