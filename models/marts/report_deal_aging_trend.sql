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

succeeded_runs as (

    select
        run_id,
        tenant_id,
        generated_at,
        -- Runs are comparable when everything they were asked is the same, bar when.
        lag(run_id) over (
            partition by
                tenant_id,
                period_end,
                {{ deal_aging_comparable_params() | join(', ') }}
            order by generated_at, run_id
        ) as previous_run_id

    from report_runs

    where
        report_type = '{{ deal_aging_report_type() }}'
        and run_status = 'SUCCEEDED'

),

previous_facts as (

    select * from {{ ref('report_deal_aging_fact') }}

),

with_previous as (

    select
        facts.tenant_id,
        facts.pipeline_id,
        facts.stage_id,
        facts.principal_type,
        facts.principal_id,
        facts.run_id,
        succeeded_runs.generated_at,
        succeeded_runs.previous_run_id,
        facts.at_risk_deal_count,
        facts.at_risk_amount,
        facts.percent_at_risk,
        -- Null for a run's first of its kind; a stage without a row in the previous run had no
        -- open deal there, so it counts 0.
        case
            when succeeded_runs.previous_run_id is not null
                then coalesce(previous_facts.at_risk_deal_count, 0)
        end as previous_at_risk_deal_count,
        case
            when succeeded_runs.previous_run_id is not null
                then coalesce(previous_facts.at_risk_amount, 0)
        end as previous_at_risk_amount,
        case
            when succeeded_runs.previous_run_id is not null
                then coalesce(previous_facts.percent_at_risk, 0)
        end as previous_percent_at_risk

    from facts

    inner join succeeded_runs
        on facts.run_id = succeeded_runs.run_id

    left join previous_facts
        on
            succeeded_runs.previous_run_id = previous_facts.run_id
            and facts.pipeline_id = previous_facts.pipeline_id
            and facts.stage_id = previous_facts.stage_id
            and facts.principal_type is not distinct from previous_facts.principal_type
            and facts.principal_id is not distinct from previous_facts.principal_id

),

final as (

    select
        tenant_id,
        pipeline_id,
        stage_id,
        principal_type,
        principal_id,
        run_id,
        generated_at,
        previous_run_id,
        at_risk_deal_count,
        at_risk_amount,
        percent_at_risk,
        cast(at_risk_deal_count - previous_at_risk_deal_count as bigint) as at_risk_deal_count_change,
        cast(at_risk_amount - previous_at_risk_amount as numeric(20, 2)) as at_risk_amount_change,
        cast(percent_at_risk - previous_percent_at_risk as numeric(7, 4)) as percent_at_risk_change

    from with_previous

)

select * from final
