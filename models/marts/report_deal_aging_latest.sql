{{
    config(
        materialized='concurrent_view',
    )
}}

with

facts as (

    select * from {{ ref('report_deal_aging_fact') }}

),

report_runs as (

    select * from {{ ref('stg_reporting__report_runs') }}

),

pipelines as (

    select * from {{ ref('stg_dyno_crm__pipelines') }}

),

pipeline_stages as (

    select * from {{ ref('stg_dyno_crm__pipeline_stages') }}

),

succeeded_runs as (

    select
        run_id,
        tenant_id,
        generated_at,
        finished_at,
        row_number() over (
            partition by tenant_id
            order by generated_at desc, run_id desc
        ) as recency

    from report_runs

    -- Only finished, successful runs: a dashboard never shows a half-built or failed run.
    -- Only whole-pipeline runs: a filtered or broken-down run is a part, not the tenant's picture.
    -- runner/store/retention.py (UNFILTERED_RUN) keeps these same runs when it prunes: change both.
    where
        report_type = '{{ deal_aging_report_type() }}'
        and run_status = 'SUCCEEDED'
        and period_start is null
        and period_end is null
        and pipeline_id is null
        and stage_id is null
        and principal_type is null
        and principal_id is null
        and breakdown is null

),

latest_runs as (

    select
        run_id,
        generated_at,
        finished_at

    from succeeded_runs

    where recency = 1

),

final as (

    select
        facts.run_id,
        facts.tenant_id,
        latest_runs.generated_at,
        latest_runs.finished_at,
        facts.pipeline_id,
        pipelines.pipeline_name,
        facts.stage_id,
        pipeline_stages.stage_name,
        pipeline_stages.stage_display_order,
        facts.principal_type,
        facts.principal_id,
        facts.threshold_days,
        facts.cycle_threshold_days,
        facts.at_risk_deal_count,
        facts.at_risk_amount,
        facts.avg_days_in_stage,
        facts.median_days_in_stage,
        facts.total_deal_count,
        facts.total_amount,
        facts.percent_at_risk

    from facts

    inner join latest_runs
        on facts.run_id = latest_runs.run_id

    -- Names as the CRM has them now; every join also matches tenant_id.
    left join pipelines
        on
            facts.pipeline_id = pipelines.pipeline_id
            and facts.tenant_id = pipelines.tenant_id

    left join pipeline_stages
        on
            facts.stage_id = pipeline_stages.pipeline_stage_id
            and facts.tenant_id = pipeline_stages.tenant_id

)

select * from final
