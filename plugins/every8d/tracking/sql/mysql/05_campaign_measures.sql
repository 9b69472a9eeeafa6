-- MySQL/MariaDB spelling: TIMESTAMPDIFF for EXTRACT(EPOCH ...), and percentile_cont as the
-- window function MariaDB has (it is no aggregate there).
-- The measures every8d_campaign_daily and every8d_campaign_summary share, at both grains:
-- grain 'day' is one row per campaign and send day (the UTC day the batch went out), grain
-- 'campaign' one row per campaign over all its batches (send_date NULL there).
-- delivery_rate = delivered / sent; time to deliver is received_at (or the time the final
-- status was first seen) minus sent_at, over delivered messages.
CREATE OR REPLACE VIEW every8d_campaign_measures AS
WITH messages AS (
    SELECT b.campaign_id,
           CAST(COALESCE(b.scheduled_at, b.sent_at) AS DATE) AS send_date,
           m.status, m.status_group, m.is_final, m.points,
           CASE WHEN m.status_group = 'delivered' AND m.sent_at IS NOT NULL
                THEN TIMESTAMPDIFF(MICROSECOND, m.sent_at, COALESCE(m.received_at, m.final_at)) / 1e6 END AS seconds_to_deliver
    FROM every8d_messages m
    JOIN every8d_batches b ON b.batch_id = m.batch_id
),
grains AS (
    SELECT 'day' AS grain, send_date AS grain_date, messages.* FROM messages
    UNION ALL
    SELECT 'campaign' AS grain, NULL AS grain_date, messages.* FROM messages
),
timed AS (
    SELECT grains.*,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds_to_deliver)
               OVER (PARTITION BY grain, campaign_id, grain_date, seconds_to_deliver IS NULL) AS p50_window,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY seconds_to_deliver)
               OVER (PARTITION BY grain, campaign_id, grain_date, seconds_to_deliver IS NULL) AS p95_window
    FROM grains
),
measured AS (  -- the percentiles of the delivered messages only, on every row of the group
    SELECT timed.*,
           CASE WHEN seconds_to_deliver IS NOT NULL THEN p50_window END AS p50_seconds_to_deliver,
           CASE WHEN seconds_to_deliver IS NOT NULL THEN p95_window END AS p95_seconds_to_deliver
    FROM timed
)
SELECT grain, campaign_id, grain_date AS send_date,
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
GROUP BY grain, campaign_id, grain_date;
