-- The design's reference query for the report, used as the oracle
-- the tests and the benchmark compare the dbt models with. Adapted only as far as a driver needs:
--   * :name placeholders became named psycopg placeholders, with a cast on each so PostgreSQL knows its type;
--   * NOW() became the placeholder "now", so a comparison can use the instant the compared run recorded;
--   * the schema name dyno_crm is kept as the design writes it.
WITH params AS (
    SELECT
        %(tenant_id)s::uuid      AS tenant_id,
        %(threshold_days)s::integer AS threshold_days,
        %(cycle_threshold_days)s::integer AS cycle_threshold_days,
        %(period_start)s::timestamptz   AS period_start,
        %(period_end)s::timestamptz     AS period_end,
        %(pipeline_id)s::uuid    AS pipeline_id,
        %(principal_type)s::varchar(5) AS principal_type,
        %(principal_id)s::uuid   AS principal_id,
        %(stage_id)s::uuid       AS stage_id
),
as_of_ts AS (
    SELECT COALESCE(params.period_end, %(now)s::timestamptz) AS as_of_ts FROM params
),
-- Identify current stage instances for open deals and compute durations
current_deals AS (
    SELECT
        d.id                  AS deal_id,
        d.pipeline_id         AS pipeline_id,
        d.amount               AS amount,
        d.created_at          AS deal_created_at,
        d.owned_by_user_id,
        d.owned_by_group_id,
        d.assigned_user_id,
        d.assigned_group_id,
        cs.pipeline_stage_id AS stage_id,
        cs.entered_at          AS stage_entered_at,
        ps.stage_state,
        GREATEST(0, EXTRACT(EPOCH FROM (a.as_of_ts - cs.entered_at)) / 86400) AS days_in_stage,
        GREATEST(0, EXTRACT(EPOCH FROM (a.as_of_ts - d.created_at)) / 86400) AS days_in_cycle
  FROM dyno_crm.deal_pipeline_stage_state cs
  JOIN dyno_crm.pipeline_stage ps
    ON ps.id = cs.pipeline_stage_id
   AND ps.tenant_id = cs.tenant_id
  JOIN dyno_crm.deal d
    ON d.id = cs.deal_id
   AND d.tenant_id = cs.tenant_id
CROSS JOIN as_of_ts a
JOIN params p ON true
WHERE cs.tenant_id = p.tenant_id
  AND cs.is_current = TRUE
  AND ps.stage_state NOT IN ('DONE_SUCCESS', 'DONE_FAILED')
  AND (p.period_start IS NULL OR cs.entered_at >= p.period_start)
  AND (p.period_end IS NULL OR cs.entered_at < p.period_end)
  AND (p.pipeline_id IS NULL OR d.pipeline_id = p.pipeline_id)
  AND (p.stage_id IS NULL OR cs.pipeline_stage_id = p.stage_id)
  AND (
    p.principal_type IS NULL
    OR (
      p.principal_type = 'USER' AND (d.owned_by_user_id = p.principal_id OR d.assigned_user_id = p.principal_id)
    )
    OR (
      p.principal_type = 'GROUP' AND (d.owned_by_group_id = p.principal_id OR d.assigned_group_id = p.principal_id)
    )
  )
)
SELECT
  COALESCE(cd.pipeline_id, params.pipeline_id) AS pipeline_id,
  params.principal_type AS principal_type,
  params.principal_id AS principal_id,
  COALESCE(cd.stage_id, params.stage_id) AS stage_id,
  params.threshold_days AS threshold_days,
  params.cycle_threshold_days AS cycle_threshold_days,
  COUNT(*) FILTER (WHERE (cd.days_in_stage > params.threshold_days) OR (params.cycle_threshold_days IS NOT NULL AND cd.days_in_cycle > params.cycle_threshold_days)) AS at_risk_deal_count,
  SUM(CASE WHEN (cd.days_in_stage > params.threshold_days) OR (params.cycle_threshold_days IS NOT NULL AND cd.days_in_cycle > params.cycle_threshold_days) THEN COALESCE(cd.amount,0) ELSE 0 END) AS at_risk_amount,
  AVG(cd.days_in_stage) AS avg_days_in_stage,
  PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY cd.days_in_stage) AS median_days_in_stage,
  COUNT(*) AS total_deal_count,
  SUM(COALESCE(cd.amount,0)) AS total_amount,
CASE WHEN COUNT(*) > 0 THEN (
    COUNT(*) FILTER (WHERE (cd.days_in_stage > params.threshold_days) OR (params.cycle_threshold_days IS NOT NULL AND cd.days_in_cycle > params.cycle_threshold_days))::NUMERIC
    / COUNT(*)
) END AS percent_at_risk
FROM current_deals cd
CROSS JOIN params
GROUP BY COALESCE(cd.pipeline_id, params.pipeline_id), params.principal_type,
params.principal_id, COALESCE(cd.stage_id, params.stage_id),
params.threshold_days, params.cycle_threshold_days
