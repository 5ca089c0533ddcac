{#
    The (run, pipeline, stage, principal) rows where a run's deal list does not add up to its
    facts: as many at-risk deals and the same amount (a null amount counts 0), and as many snoozed
    deals. With
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
            count(*) filter (where not is_snoozed) as at_risk_deal_count,
            coalesce(sum(amount) filter (where not is_snoozed), 0) as at_risk_amount,
            count(*) filter (where is_snoozed) as snoozed_deal_count

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
            at_risk_amount,
            snoozed_deal_count

        from {{ facts }}

        where
            (at_risk_deal_count > 0 or snoozed_deal_count > 0)
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
        at_risk_fact_rows.snoozed_deal_count as fact_snoozed_count,
        deals_per_fact_row.snoozed_deal_count as deal_list_snoozed_count,
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
        or at_risk_fact_rows.snoozed_deal_count is distinct from deals_per_fact_row.snoozed_deal_count
{% endmacro %}
