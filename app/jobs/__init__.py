"""The job machinery: Redis connection, queues, retry policy, unique enqueue, leases, recovery."""
