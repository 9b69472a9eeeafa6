-- The same SQL as ../30_failure_reasons.sql (a dialect folder replaces every file).
-- Why messages did not arrive: failed and expired messages per campaign, day and status code.
CREATE OR REPLACE VIEW every8d_failure_reasons AS
SELECT b.campaign_id,
       CAST(COALESCE(b.scheduled_at, b.sent_at) AS DATE) AS send_date,
       m.status_group,
       m.status,
       m.meaning_en,
       m.meaning_zh,
       count(*) AS messages
FROM every8d_messages m
JOIN every8d_batches b ON b.batch_id = m.batch_id
WHERE m.status_group IN ('failed', 'expired')
GROUP BY b.campaign_id, CAST(COALESCE(b.scheduled_at, b.sent_at) AS DATE), m.status_group, m.status,
         m.meaning_en, m.meaning_zh;
