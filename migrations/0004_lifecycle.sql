-- Certificate lifecycle: ACME Renewal Information (RFC 9773) per certificate, a ledger
-- of what was asked of each CA (for the budgets that mirror its rate limits), and the
-- reason a domain waits for budget.

-- ARI: the certificate's identifier (base64url(AKI) "." base64url(serial)), the window
-- the CA suggested at the last poll, and when to poll again.
ALTER TABLE certificates
    ADD COLUMN ari_cert_id         text,
    ADD COLUMN ari_window_start    timestamptz,
    ADD COLUMN ari_window_end      timestamptz,
    ADD COLUMN ari_explanation_url text,
    ADD COLUMN ari_checked_at      timestamptz,
    ADD COLUMN ari_next_check_at   timestamptz;

-- Edges care about what they serve, not about renewal bookkeeping: only changes to the
-- chain, the key or the validity enter the change log (an ARI poll twice a day per
-- certificate must not make every edge reload it).
DROP TRIGGER certificates_changes ON certificates;
CREATE TRIGGER certificates_changes
    AFTER INSERT OR DELETE OR UPDATE OF hostname, chain_pem, key_sealed, not_after ON certificates
    FOR EACH ROW EXECUTE FUNCTION landlord_record_change();

-- What was asked of a CA, for the budgets (orders per account per window, certificates
-- per registered domain per window, failed validations per hostname per window). Not
-- tied to domains by a foreign key: deleting and re-adding a hostname does not refund
-- what the CA counted.
CREATE TABLE ca_ledger (
    id                bigserial PRIMARY KEY,
    at                timestamptz NOT NULL DEFAULT now(),
    ca                text NOT NULL,        -- ACME directory URL, or 'local'
    kind              text NOT NULL CHECK (kind IN ('order', 'certificate', 'failed_validation')),
    hostname          text NOT NULL,
    registered_domain text NOT NULL,        -- eTLD+1 from the Public Suffix List
    domain_id         uuid,
    renewal           boolean NOT NULL DEFAULT false,
    serial            text,                 -- kind = 'certificate': the new certificate
    replaces          text                  -- kind = 'certificate': the serial it replaced
);
CREATE INDEX ca_ledger_by_ca ON ca_ledger (ca, kind, at);
CREATE INDEX ca_ledger_by_registered_domain ON ca_ledger (registered_domain, kind, at);
CREATE INDEX ca_ledger_by_hostname ON ca_ledger (hostname, kind, at);
-- A certificate is replaced at most once: two workers can never both renew it.
CREATE UNIQUE INDEX ca_ledger_one_renewal ON ca_ledger (ca, replaces)
    WHERE kind = 'certificate' AND replaces IS NOT NULL;

-- A domain waiting for CA budget says so: why, and until when.
ALTER TABLE domains
    ADD COLUMN queued_reason text,
    ADD COLUMN queued_until  timestamptz;

DROP TRIGGER domains_announce ON domains;
CREATE TRIGGER domains_announce
    AFTER INSERT OR DELETE OR UPDATE OF status, checked_at, check_problem, last_error, queued_reason ON domains
    FOR EACH ROW EXECUTE FUNCTION landlord_announce_domain();

-- The change log is pruned (by workers, past a retention); `pruned_through` is the
-- highest sequence number deleted. An edge whose position is below it missed changes it
-- can no longer read, and reloads everything instead.
CREATE TABLE change_log_horizon (
    id             integer PRIMARY KEY CHECK (id = 1),
    pruned_through bigint NOT NULL DEFAULT 0
);
INSERT INTO change_log_horizon (id, pruned_through) VALUES (1, 0);
CREATE INDEX changes_at ON changes (at);
