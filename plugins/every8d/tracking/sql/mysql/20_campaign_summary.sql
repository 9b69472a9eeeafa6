-- MySQL/MariaDB spelling: TIMESTAMPDIFF for EXTRACT(EPOCH ...), <=> for IS NOT DISTINCT FROM, and
-- percentile_cont as the window function MariaDB has (it is no aggregate there).
-- The same measures per campaign over all its batches.
CREATE OR REPLACE VIEW every8d_campaign_summary AS
WITH messages AS (
    SELECT b.campaign_id,
           CAST(COALESCE(b.scheduled_at, b.sent_at) AS DATE) AS send_date,
           m.status, m.status_group, m.is_final, m.points,
           CASE WHEN m.status_group = 'delivered' AND m.sent_at IS NOT NULL
                THEN TIMESTAMPDIFF(MICROSECOND, m.sent_at, COALESCE(m.received_at, m.final_at)) / 1e6 END AS seconds_to_deliver
    FROM every8d_messages m
    JOIN every8d_batches b ON b.batch_id = m.batch_id
),
timed AS (
    SELECT messages.*,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds_to_deliver)
               OVER (PARTITION BY campaign_id, seconds_to_deliver IS NULL) AS p50_window,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY seconds_to_deliver)
               OVER (PARTITION BY campaign_id, seconds_to_deliver IS NULL) AS p95_window
    FROM messages
),
measured AS (  -- the percentiles of the delivered messages only, on every row of the group
    SELECT timed.*,
           CASE WHEN seconds_to_deliver IS NOT NULL THEN p50_window END AS p50_seconds_to_deliver,
           CASE WHEN seconds_to_deliver IS NOT NULL THEN p95_window END AS p95_seconds_to_deliver
    FROM timed
),
campaigns AS (
    SELECT campaign_id,
        min(send_date) AS first_send_date,
        max(send_date) AS last_send_date,
        count(*) AS sent,
        sum(CASE WHEN status_group = 'delivered' THEN 1 ELSE 0 END) AS delivered,
        sum(CASE WHEN status_group = 'failed' THEN 1 ELSE 0 END) AS failed,
        sum(CASE WHEN status_group = 'expired' THEN 1 ELSE 0 END) AS expired,
        sum(CASE WHEN status_group = 'cancelled' THEN 1 ELSE 0 END) AS cancelled,
        sum(CASE WHEN NOT is_final THEN 1 ELSE 0 END) AS pending,
        CAST(sum(CASE WHEN status_group = 'delivered' THEN 1 ELSE 0 END) AS DOUBLE) / NULLIF(count(*), 0)
            AS delivery_rate,
        COALESCE(sum(points), 0) AS points_spent,
        CAST(COALESCE(sum(points), 0) AS DOUBLE) / NULLIF(sum(CASE WHEN status_group = 'delivered' THEN 1 ELSE 0 END), 0)
            AS points_per_delivered,
        max(p50_seconds_to_deliver) AS p50_seconds_to_deliver,
        max(p95_seconds_to_deliver) AS p95_seconds_to_deliver
    FROM measured
    GROUP BY campaign_id
),
replies AS (
    SELECT b.campaign_id AS campaign_id,
           count(*) AS replies,
           count(DISTINCT s.mobile) AS opt_outs
    FROM every8d_replies r
    JOIN every8d_batches b ON b.batch_id = r.batch_id
    -- an opt-out is a reply whose number the shared opt-out matcher suppressed (every8d.optout)
    LEFT JOIN every8d_suppressions s ON s.mobile = r.mobile AND s.source = 'reply'
    GROUP BY b.campaign_id
)
SELECT c.*, COALESCE(r.replies, 0) AS replies, COALESCE(r.opt_outs, 0) AS opt_outs
FROM campaigns c
LEFT JOIN replies r ON r.campaign_id <=> c.campaign_id;
