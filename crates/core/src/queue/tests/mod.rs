//! QueueState tests.
