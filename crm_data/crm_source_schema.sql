-- The CRM team's DDL: change it only with the CRM's own schema.
-- The CRM's own tables that the Deal Aging report reads (the dbt sources).
-- The CRM application owns and writes them; the report project only reads them.
-- Column names and meanings follow the report's design (docs/definition.md); this file pins
-- the types, nullability and keys of the CRM's tables.
-- Every table is multi-tenant: a row belongs to exactly one tenant_id, and every
-- join between them is also a join on tenant_id.

CREATE SCHEMA IF NOT EXISTS dyno_crm;

CREATE TABLE IF NOT EXISTS dyno_crm.pipeline (
    id          UUID PRIMARY KEY,
    tenant_id   UUID NOT NULL,
    name        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- stage_state is one of: 'NOT_STARTED', 'IN_PROGRESS', 'DONE_SUCCESS', 'DONE_FAILED'.
-- 'DONE_SUCCESS' (won) and 'DONE_FAILED' (lost) are terminal: a deal whose current
-- stage is terminal is closed and never counts in the aging report.
CREATE TABLE IF NOT EXISTS dyno_crm.pipeline_stage (
    id            UUID PRIMARY KEY,
    tenant_id     UUID NOT NULL,
    pipeline_id   UUID NOT NULL REFERENCES dyno_crm.pipeline (id),
    name          TEXT NOT NULL,
    display_order INTEGER NOT NULL,
    stage_state   VARCHAR(20) NOT NULL
);

-- amount is NULL while a deal has no value yet (the report counts it as 0).
-- A deal is owned by a user and/or a group, and may be assigned to a user and/or a group.
CREATE TABLE IF NOT EXISTS dyno_crm.deal (
    id                 UUID PRIMARY KEY,
    tenant_id          UUID NOT NULL,
    pipeline_id        UUID NOT NULL REFERENCES dyno_crm.pipeline (id),
    name               TEXT NOT NULL,
    amount             NUMERIC(20,2),
    created_at         TIMESTAMPTZ NOT NULL,
    owned_by_user_id   UUID,
    owned_by_group_id  UUID,
    assigned_user_id   UUID,
    assigned_group_id  UUID
);

-- One row per stage a deal has been in. The row of the stage the deal is in now has
-- is_current = TRUE and exited_at NULL. The CRM promises at most one current row per
-- deal, but does not enforce it with a constraint.
CREATE TABLE IF NOT EXISTS dyno_crm.deal_pipeline_stage_state (
    id                 UUID PRIMARY KEY,
    tenant_id          UUID NOT NULL,
    deal_id            UUID NOT NULL REFERENCES dyno_crm.deal (id),
    pipeline_stage_id  UUID NOT NULL REFERENCES dyno_crm.pipeline_stage (id),
    entered_at         TIMESTAMPTZ NOT NULL,
    exited_at          TIMESTAMPTZ,
    is_current         BOOLEAN NOT NULL
);

CREATE INDEX IF NOT EXISTS ix_deal_tenant_pipeline ON dyno_crm.deal (tenant_id, pipeline_id);
CREATE INDEX IF NOT EXISTS ix_dpss_deal ON dyno_crm.deal_pipeline_stage_state (deal_id);
CREATE INDEX IF NOT EXISTS ix_pipeline_stage_pipeline ON dyno_crm.pipeline_stage (pipeline_id);
