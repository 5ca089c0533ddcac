{#
    The (run, pipeline, stage, principal) rows where a run's deal list does not add up to its
    facts: as many at-risk deals and the same amount (a null amount counts 0). With
    `run_ids_sql` (a query of run ids) only those runs are compared, and a run with at-risk facts
    but no deal row is a mismatch; without it every run that has a deal row is compared (runs
    computed before the deal list existed have none).
#}
{% macro deal_aging_deal_list_mismatches(facts, deals, run_ids_sql=none) %}
    with

    deals_per_fact_row as (

        select
            run_id,
            pipeline_id,
            stage_id,
            principal_type,
            principal_id,
            count(*) as at_risk_deal_count,
            sum(coalesce(amount, 0)) as at_risk_amount

        from {{ deals }}

        {% if run_ids_sql %}
        where run_id in ({{ run_ids_sql }})
        {% endif %}

        group by
            run_id,
            pipeline_id,
            stage_id,
            principal_type,
            principal_id

    ),

    at_risk_fact_rows as (

        select
            run_id,
            pipeline_id,
            stage_id,
            principal_type,
            principal_id,
            at_risk_deal_count,
            at_risk_amount

        from {{ facts }}

        where
            at_risk_deal_count > 0
            {% if run_ids_sql %}
            and run_id in ({{ run_ids_sql }})
            {% else %}
            and run_id in (select deals_per_fact_row.run_id from deals_per_fact_row)
            {% endif %}

    )

    select
        at_risk_fact_rows.at_risk_deal_count as fact_count,
        deals_per_fact_row.at_risk_deal_count as deal_list_count,
        at_risk_fact_rows.at_risk_amount as fact_amount,
        deals_per_fact_row.at_risk_amount as deal_list_amount,
        coalesce(at_risk_fact_rows.run_id, deals_per_fact_row.run_id) as run_id,
        coalesce(at_risk_fact_rows.pipeline_id, deals_per_fact_row.pipeline_id) as pipeline_id,
        coalesce(at_risk_fact_rows.stage_id, deals_per_fact_row.stage_id) as stage_id

    from at_risk_fact_rows

    full outer join deals_per_fact_row
        on
            at_risk_fact_rows.run_id = deals_per_fact_row.run_id
            and at_risk_fact_rows.pipeline_id = deals_per_fact_row.pipeline_id
            and at_risk_fact_rows.stage_id = deals_per_fact_row.stage_id
            and at_risk_fact_rows.principal_type is not distinct from deals_per_fact_row.principal_type
            and at_risk_fact_rows.principal_id is not distinct from deals_per_fact_row.principal_id

    where
        at_risk_fact_rows.at_risk_deal_count is distinct from deals_per_fact_row.at_risk_deal_count
        or at_risk_fact_rows.at_risk_amount is distinct from deals_per_fact_row.at_risk_amount
{% endmacro %}
