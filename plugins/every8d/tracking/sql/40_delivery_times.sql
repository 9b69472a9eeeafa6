-- One row per delivered message: how long it took, for distributions and curves
-- (received_at, or the time the final status was first seen, minus sent_at).
CREATE OR REPLACE VIEW every8d_delivery_times AS
SELECT b.campaign_id,
       m.batch_id,
       CAST(COALESCE(b.scheduled_at, b.sent_at) AS DATE) AS send_date,
       m.sent_at,
       CAST(EXTRACT(EPOCH FROM COALESCE(m.received_at, m.final_at) - m.sent_at) AS DOUBLE PRECISION)
           AS seconds_to_deliver
FROM every8d_messages m
JOIN every8d_batches b ON b.batch_id = m.batch_id
WHERE m.status_group = 'delivered' AND m.sent_at IS NOT NULL AND COALESCE(m.received_at, m.final_at) IS NOT NULL;
