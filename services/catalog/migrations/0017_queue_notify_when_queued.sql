-- A queue position counts queued jobs only, so only a job entering or leaving the queued state moves
-- one. A job leased as it is created, or a running job that finishes, notified every catalog and woke
-- Postgres's listeners for nothing; and a transaction that notifies takes a cluster-wide lock at commit.
DROP TRIGGER jobs_queue_changed ON jobs;
CREATE TRIGGER jobs_queued AFTER INSERT ON jobs
    FOR EACH ROW WHEN (NEW.state = 'queued') EXECUTE FUNCTION jobs_notify_queue();
CREATE TRIGGER jobs_unqueued AFTER DELETE ON jobs
    FOR EACH ROW WHEN (OLD.state = 'queued') EXECUTE FUNCTION jobs_notify_queue();
CREATE TRIGGER jobs_queue_state_changed AFTER UPDATE OF state ON jobs
    FOR EACH ROW WHEN ((OLD.state = 'queued') IS DISTINCT FROM (NEW.state = 'queued'))
    EXECUTE FUNCTION jobs_notify_queue();
