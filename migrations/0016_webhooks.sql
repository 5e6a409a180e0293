-- Webhooks: tenants' endpoints, and an outbox of deliveries.
--
-- Every timeline event (`events`) of a tenant becomes, in the same transaction, one delivery
-- per enabled webhook of that tenant subscribed to its kind (`domain.<kind>`; an empty
-- `events` array subscribes to every kind), so nothing is lost between a state change and
-- its notification. API processes deliver them (they render the Domain object as the API
-- shows it), claiming with FOR UPDATE SKIP LOCKED and a lease: at least once, across
-- restarts. The secrets are sealed under the master key (context `webhook-secret:<id>`).
CREATE TABLE webhooks (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url             text NOT NULL CHECK (length(url) <= 2048),
    secret_sealed   bytea NOT NULL,
    -- After a rotation, the replaced secret keeps signing (a second signature) until then,
    -- so receivers can switch without losing a delivery.
    previous_secret_sealed bytea,
    previous_secret_until  timestamptz,
    events          text[] NOT NULL DEFAULT '{}',
    enabled         boolean NOT NULL DEFAULT true,
    disabled_at     timestamptz,
    disabled_reason text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_tenant ON webhooks (tenant_id) WHERE enabled;

CREATE TABLE webhook_deliveries (
    -- Also the `webhook-id` header: the same on every attempt, for receivers' idempotency.
    id              uuid PRIMARY KEY,
    webhook_id      uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    tenant_id       uuid NOT NULL,
    kind            text NOT NULL,
    domain_id       uuid,
    hostname        text,
    message         text NOT NULL DEFAULT '',
    event_at        timestamptz NOT NULL DEFAULT now(),
    -- The body, rendered at the first attempt and sent unchanged on every later one.
    body            text,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- A process attempting it now holds it until then (a crash lets another take it).
    leased_until    timestamptz,
    delivered_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_of ON webhook_deliveries (webhook_id, id);
CREATE INDEX webhook_deliveries_done ON webhook_deliveries (created_at)
    WHERE status <> 'pending';

CREATE TABLE webhook_attempts (
    delivery_id uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt     integer NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    -- The HTTP status, or NULL when no response came (the error says why).
    status      integer,
    error       text,
    duration_ms integer NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);

CREATE FUNCTION enqueue_webhook_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries
        (id, webhook_id, tenant_id, kind, domain_id, hostname, message, event_at)
    SELECT gen_random_uuid(), w.id, NEW.tenant_id, 'domain.' || NEW.kind, NEW.domain_id,
           (SELECT hostname FROM domains WHERE id = NEW.domain_id), NEW.message, NEW.at
    FROM webhooks w
    WHERE w.tenant_id = NEW.tenant_id AND w.enabled
      AND (cardinality(w.events) = 0 OR 'domain.' || NEW.kind = ANY (w.events));
    IF FOUND THEN
        PERFORM pg_notify('landlord_webhooks', '');
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER events_webhooks AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION enqueue_webhook_deliveries();
