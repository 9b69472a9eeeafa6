-- The same measures per campaign over all its batches (every8d_campaign_measures, grain 'campaign').
CREATE OR REPLACE VIEW every8d_campaign_summary AS
WITH replies AS (
    SELECT b.campaign_id AS campaign_id,
           count(*) AS replies,
           count(DISTINCT s.mobile) AS opt_outs
    FROM every8d_replies r
    JOIN every8d_batches b ON b.batch_id = r.batch_id
    -- an opt-out is a reply whose number the shared opt-out matcher suppressed (every8d.optout)
    LEFT JOIN every8d_suppressions s ON s.mobile = r.mobile AND s.source = 'reply'
    GROUP BY b.campaign_id
)
SELECT c.campaign_id, c.first_send_date, c.last_send_date, c.sent, c.delivered, c.failed, c.expired, c.cancelled,
       c.pending, c.delivery_rate, c.points_spent, c.points_per_delivered, c.p50_seconds_to_deliver,
       c.p95_seconds_to_deliver, COALESCE(r.replies, 0) AS replies, COALESCE(r.opt_outs, 0) AS opt_outs
FROM every8d_campaign_measures c
LEFT JOIN replies r ON (r.campaign_id = c.campaign_id OR (r.campaign_id IS NULL AND c.campaign_id IS NULL))
WHERE c.grain = 'campaign';
