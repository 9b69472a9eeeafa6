-- MySQL/MariaDB spelling: TIMESTAMPDIFF for EXTRACT(EPOCH ...).
-- One row per delivered message: how long it took, for distributions and curves
-- (received_at, or the time the final status was first seen, minus sent_at).
CREATE OR REPLACE VIEW every8d_delivery_times AS
SELECT b.campaign_id,
       m.batch_id,
       CAST(COALESCE(b.scheduled_at, b.sent_at) AS DATE) AS send_date,
       m.sent_at,
       TIMESTAMPDIFF(MICROSECOND, m.sent_at, COALESCE(m.received_at, m.final_at)) / 1e6
           AS seconds_to_deliver
FROM every8d_messages m
JOIN every8d_batches b ON b.batch_id = m.batch_id
WHERE m.status_group = 'delivered' AND m.sent_at IS NOT NULL AND COALESCE(m.received_at, m.final_at) IS NOT NULL;
