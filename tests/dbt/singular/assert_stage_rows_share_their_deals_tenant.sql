{{ config(severity='warn') }}

with

deal_stage_states as (

    select * from {{ ref('stg_dyno_crm__deal_stage_states') }}

),

deals as (

    select * from {{ ref('stg_dyno_crm__deals') }}

),

pipeline_stages as (

    select * from {{ ref('stg_dyno_crm__pipeline_stages') }}

),

cross_tenant_rows as (

    select
        deal_stage_states.deal_stage_state_id,
        deal_stage_states.tenant_id,
        deals.tenant_id as deal_tenant_id,
        pipeline_stages.tenant_id as stage_tenant_id

    from deal_stage_states

    left join deals
        on deal_stage_states.deal_id = deals.deal_id

    left join pipeline_stages
        on deal_stage_states.pipeline_stage_id = pipeline_stages.pipeline_stage_id

    where
        deals.tenant_id <> deal_stage_states.tenant_id
        or pipeline_stages.tenant_id <> deal_stage_states.tenant_id

)

select * from cross_tenant_rows
