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

-- DNS-01 TXT records a worker wrote (before writing them), so that a crash leaves nothing
-- a later round does not remove: the domain's next round, or the hourly sweep.
CREATE TABLE dns_challenge_records (
    id         bigserial PRIMARY KEY,
    domain_id  uuid NOT NULL,
    zone       text NOT NULL,
    name       text NOT NULL,
    value      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dns_challenge_records_domain ON dns_challenge_records (domain_id);
