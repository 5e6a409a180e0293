-- Delegated DCV (DNS-01 through a CNAME the tenant creates at `_acme-challenge.<name>`,
-- pointing into LANDLORD_ACME_DNS_ZONE): one unguessable label per tenant and name, the
-- name being the hostname without a leading `*.`. Registrations of one tenant that share
-- the name share the label, and a name deleted and registered again keeps it, so the
-- tenant's record stays right. `verified_at`: the last check found the CNAME.
CREATE TABLE dcv_labels (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL,
    label       text NOT NULL UNIQUE DEFAULT replace(gen_random_uuid()::text, '-', ''),
    verified_at timestamptz,
    PRIMARY KEY (tenant_id, name)
);
INSERT INTO dcv_labels (tenant_id, name)
    SELECT DISTINCT tenant_id, regexp_replace(hostname, '^\*\.', '') FROM domains;
