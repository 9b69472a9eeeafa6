-- Delivery and cost per campaign and send day (the UTC day the batch went out), from the
-- shared measures (every8d_campaign_measures, grain 'day'); opt-outs are repliers
-- whose trimmed, upper-cased reply is a keyword of every8d.tracking.replies.OPT_OUT_KEYWORDS.
CREATE OR REPLACE VIEW every8d_campaign_daily AS
WITH replies AS (
    SELECT b.campaign_id AS campaign_id, CAST(COALESCE(b.scheduled_at, b.sent_at) AS DATE) AS send_date,
           count(*) AS replies,
           count(DISTINCT s.mobile) AS opt_outs
    FROM every8d_replies r
    JOIN every8d_batches b ON b.batch_id = r.batch_id
    -- an opt-out is a reply whose number the shared opt-out matcher suppressed (every8d.optout)
    LEFT JOIN every8d_suppressions s ON s.mobile = r.mobile AND s.source = 'reply'
    GROUP BY b.campaign_id, CAST(COALESCE(b.scheduled_at, b.sent_at) AS DATE)
)
SELECT d.campaign_id, d.send_date, d.sent, d.delivered, d.failed, d.expired, d.cancelled, d.pending,
       d.delivery_rate, d.points_spent, d.points_per_delivered, d.p50_seconds_to_deliver, d.p95_seconds_to_deliver,
       COALESCE(r.replies, 0) AS replies, COALESCE(r.opt_outs, 0) AS opt_outs
FROM every8d_campaign_measures d
LEFT JOIN replies r
  ON (r.campaign_id = d.campaign_id OR (r.campaign_id IS NULL AND d.campaign_id IS NULL))
 AND r.send_date = d.send_date
WHERE d.grain = 'day';
