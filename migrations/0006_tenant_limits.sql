-- Greedy tenants: what their requests cost is counted in PostgreSQL, so every limit holds
-- across any number of API processes and workers.

-- "Check now" at most once per domain per interval.
ALTER TABLE domains ADD COLUMN check_requested_at timestamptz;

-- The per-tenant API request rate, as a GCRA: the theoretical arrival time of the next
-- request. One row per tenant, updated in the same statement that authenticates the key.
CREATE TABLE api_rate (
    tenant_id uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    tat       timestamptz NOT NULL
);

-- Fair issuance: the CA ledger knows whose order it was, so no tenant takes more than its
-- share of a budget window. Entries from before this migration get their domain's tenant.
ALTER TABLE ca_ledger ADD COLUMN tenant_id uuid;
UPDATE ca_ledger l SET tenant_id = d.tenant_id FROM domains d WHERE d.id = l.domain_id;
CREATE INDEX ca_ledger_by_tenant ON ca_ledger (ca, tenant_id, kind, at);

-- Timeline pruning by age.
CREATE INDEX events_at ON events (at);
