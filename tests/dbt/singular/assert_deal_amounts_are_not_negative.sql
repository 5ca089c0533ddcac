{{ config(severity='warn') }}

with

deals as (

    select * from {{ ref('stg_dyno_crm__deals') }}

),

negative_amounts as (

    select
        deal_id,
        tenant_id,
        amount

    from deals

    where amount < 0

)

select * from negative_amounts
