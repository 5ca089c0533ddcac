{{
    config(
        materialized='concurrent_view',
    )
}}

with

deal_stage_states as (

    select * from {{ ref('stg_dyno_crm__deal_stage_states') }}

),

pipeline_stages as (

    select * from {{ ref('stg_dyno_crm__pipeline_stages') }}

),

completed_visits as (

    select
        deal_stage_states.tenant_id,
        pipeline_stages.pipeline_id,
        deal_stage_states.pipeline_stage_id as stage_id,
        pipeline_stages.stage_name,
        pipeline_stages.stage_display_order,
        {{ days_elapsed('deal_stage_states.stage_entered_at', 'deal_stage_states.stage_exited_at') }} as visit_days

    from deal_stage_states

    inner join pipeline_stages
        on
            deal_stage_states.pipeline_stage_id = pipeline_stages.pipeline_stage_id
            and deal_stage_states.tenant_id = pipeline_stages.tenant_id

    -- As of now: the view is as current as the CRM.
    where {{ deal_aging_completed_in_year_before(
        'deal_stage_states.stage_entered_at', 'deal_stage_states.stage_exited_at', 'now()'
    ) }}

),

per_stage as (

    select
        tenant_id,
        pipeline_id,
        stage_id,
        stage_name,
        stage_display_order,
        {{ deal_aging_visit_statistics('visit_days') }}

    from completed_visits

    group by
        tenant_id,
        pipeline_id,
        stage_id,
        stage_name,
        stage_display_order

),

final as (

    select
        tenant_id,
        pipeline_id,
        stage_id,
        stage_name,
        stage_display_order,
        completed_visit_count,
        cast(p50_visit_days as numeric(10, 2)) as p50_visit_days,
        cast(p75_visit_days as numeric(10, 2)) as p75_visit_days,
        cast(p90_visit_days as numeric(10, 2)) as p90_visit_days,
        {{ deal_aging_learned_limit('completed_visit_count', 'p75_visit_days') }} as p75_limit_days,
        {{ deal_aging_learned_limit('completed_visit_count', 'p90_visit_days') }} as p90_limit_days

    from per_stage

)

select * from final
