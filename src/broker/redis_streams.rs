//! The distributed broker: Redis Streams with consumer groups.
//!
//! Commands go through one multiplexed connection that reconnects by itself. Blocking reads
//! (`XREADGROUP … BLOCK`) would stall every command queued behind them on that connection, so
//! each concurrent reader borrows a connection of its own from a small pool.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{
    StreamAutoClaimReply, StreamId, StreamInfoGroupsReply, StreamPendingCountReply,
    StreamRangeReply, StreamReadReply,
};
use redis::{Client, RedisError};
use tokio::sync::Mutex;

use super::{Broker, BrokerError, Delivery, EntryId, StreamMessage};

/// How long a command may take before the connection counts as broken.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Reconnect attempts per command, with exponential backoff from 100 ms up to one second; the
/// callers (outbox, worker) back off further on their own.
const RECONNECT_RETRIES: usize = 2;

/// Entry fields, as written by `publish`.
const EVENT_ID: &str = "event_id";
const PARTITION_KEY: &str = "partition_key";
const SEQUENCE: &str = "sequence";
const PAYLOAD: &str = "payload";

/// [`Broker`] on Redis Streams.
pub struct RedisBroker {
    client: Client,
    commands: ConnectionManager,
    /// Connections for blocking reads, one per concurrent reader.
    readers: Mutex<Vec<ConnectionManager>>,
    /// Approximate cap on each stream's length (`XADD … MAXLEN ~`).
    max_len: usize,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker")
            .field("max_len", &self.max_len)
            .finish_non_exhaustive()
    }
}

impl RedisBroker {
    /// A broker on the server at `url` (`redis://…`), keeping each stream near `max_len`
    /// entries. Connects on first use, so a process starts while Redis is down.
    pub fn connect_lazy(url: &str, max_len: usize) -> Result<Self, BrokerError> {
        let client = Client::open(url).map_err(|err| BrokerError::Backend(Box::new(err)))?;
        let commands = manager(&client, Some(RESPONSE_TIMEOUT))
            .map_err(|err| BrokerError::Backend(Box::new(err)))?;
        Ok(Self {
            client,
            commands,
            readers: Mutex::new(Vec::new()),
            max_len,
        })
    }

    /// Runs a command that blocks up to `block` on a connection of its own, returned to the pool
    /// afterwards. A server that does not answer within `block` plus the response timeout costs
    /// the connection (its reply may still come) and counts as unavailable.
    async fn blocking<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        block: Duration,
    ) -> redis::RedisResult<T> {
        let pooled = self.readers.lock().await.pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => manager(&self.client, None)?,
        };
        match tokio::time::timeout(block + RESPONSE_TIMEOUT, cmd.query_async(&mut conn)).await {
            Ok(result) => {
                self.readers.lock().await.push(conn);
                result
            }
            Err(_) => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no answer to a blocking read",
            ))),
        }
    }

    /// Delivery counts of the entries `ids`, by id: one `XPENDING stream group id id 1` each, in
    /// one pipeline (a range query could be cut short by other entries the consumer holds).
    async fn delivery_counts(
        &self,
        group: &str,
        stream: &str,
        ids: &[String],
    ) -> Result<HashMap<String, usize>, BrokerError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("XPENDING")
                .arg(stream)
                .arg(group)
                .arg(id)
                .arg(id)
                .arg(1);
        }
        let replies: Vec<StreamPendingCountReply> = pipe
            .query_async(&mut self.commands.clone())
            .await
            .map_err(|err| broker_error(err, stream, group))?;
        Ok(replies
            .into_iter()
            .flat_map(|reply| reply.ids)
            .map(|pending| (pending.id, pending.times_delivered))
            .collect())
    }

    /// Acknowledges entries that cannot be decoded, so they stop coming back.
    async fn discard(&self, group: &str, stream: &str, ids: &[EntryId]) {
        if ids.is_empty() {
            return;
        }
        tracing::error!(stream, entries = ?ids, "discarding stream entries without an event");
        if let Err(err) = self.ack(group, stream, ids).await {
            tracing::warn!(stream, error = %err, "could not acknowledge undecodable entries");
        }
    }
}

/// A self-reconnecting connection with the given response timeout.
fn manager(
    client: &Client,
    response_timeout: Option<Duration>,
) -> redis::RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(RECONNECT_RETRIES)
        .set_max_delay(Duration::from_secs(1))
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(response_timeout);
    ConnectionManager::new_lazy_with_config(client.clone(), config)
}

/// Sorts a Redis error into the broker's kinds.
fn broker_error(err: RedisError, stream: &str, group: &str) -> BrokerError {
    if err.code() == Some("NOGROUP") {
        BrokerError::NoGroup {
            stream: stream.to_string(),
            group: group.to_string(),
        }
    } else if err.is_io_error()
        || err.is_connection_refusal()
        || err.is_connection_dropped()
        || err.is_timeout()
        || matches!(
            err.code(),
            Some("LOADING" | "BUSY" | "TRYAGAIN" | "MASTERDOWN")
        )
    {
        BrokerError::Unavailable(Box::new(err))
    } else {
        BrokerError::Backend(Box::new(err))
    }
}

/// The message an entry of `stream` carries, if it has one.
fn decode(stream: &str, entry: &StreamId) -> Option<StreamMessage> {
    Some(StreamMessage {
        stream: stream.to_string(),
        event_id: entry.get(EVENT_ID)?,
        partition_key: entry.get(PARTITION_KEY),
        sequence: entry.get(SEQUENCE),
        payload: entry.get(PAYLOAD)?,
    })
}

/// Decodes `entries` into deliveries; returns the ids of entries without an event apart.
fn deliveries(
    stream: &str,
    entries: Vec<StreamId>,
    count_of: impl Fn(&str) -> u32,
) -> (Vec<Delivery>, Vec<EntryId>) {
    let mut decoded = Vec::with_capacity(entries.len());
    let mut broken = Vec::new();
    for entry in entries {
        match decode(stream, &entry) {
            Some(message) => decoded.push(Delivery {
                delivery_count: count_of(&entry.id),
                entry_id: EntryId(entry.id),
                message,
            }),
            None => broken.push(EntryId(entry.id)),
        }
    }
    (decoded, broken)
}

#[async_trait]
impl Broker for RedisBroker {
    async fn publish(&self, messages: &[StreamMessage]) -> Result<Vec<EntryId>, BrokerError> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for message in messages {
            let add = pipe
                .cmd("XADD")
                .arg(&message.stream)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.max_len)
                .arg("*")
                .arg(EVENT_ID)
                .arg(&message.event_id)
                .arg(PAYLOAD)
                .arg(&message.payload);
            if let Some(key) = &message.partition_key {
                add.arg(PARTITION_KEY).arg(key);
            }
            if let Some(sequence) = message.sequence {
                add.arg(SEQUENCE).arg(sequence);
            }
        }
        let ids: Vec<String> = pipe
            .query_async(&mut self.commands.clone())
            .await
            .map_err(|err| broker_error(err, &messages[0].stream, ""))?;
        Ok(ids.into_iter().map(EntryId).collect())
    }

    async fn ensure_group(&self, stream: &str, group: &str) -> Result<(), BrokerError> {
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(stream)
            .arg(group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut self.commands.clone())
            .await;
        match created {
            Err(err) if err.code() != Some("BUSYGROUP") => Err(broker_error(err, stream, group)),
            _ => Ok(()),
        }
    }

    async fn read_group(
        &self,
        group: &str,
        consumer: &str,
        streams: &[String],
        count: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>, BrokerError> {
        if streams.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(group)
            .arg(consumer)
            .arg("COUNT")
            .arg(count);
        if !block.is_zero() {
            cmd.arg("BLOCK").arg(block.as_millis() as u64);
        }
        cmd.arg("STREAMS").arg(streams);
        for _ in streams {
            cmd.arg(">");
        }
        let reply: Option<StreamReadReply> = self
            .blocking(&cmd, block)
            .await
            .map_err(|err| broker_error(err, &streams.join(","), group))?;
        let mut delivered = Vec::new();
        for key in reply.map(|reply| reply.keys).unwrap_or_default() {
            let (decoded, broken) = deliveries(&key.key, key.ids, |_| 1);
            delivered.extend(decoded);
            self.discard(group, &key.key, &broken).await;
        }
        Ok(delivered)
    }

    async fn ack(&self, group: &str, stream: &str, ids: &[EntryId]) -> Result<u64, BrokerError> {
        if ids.is_empty() {
            return Ok(0);
        }
        redis::cmd("XACK")
            .arg(stream)
            .arg(group)
            .arg(ids.iter().map(|id| id.0.as_str()).collect::<Vec<_>>())
            .query_async(&mut self.commands.clone())
            .await
            .map_err(|err| broker_error(err, stream, group))
    }

    async fn claim_idle(
        &self,
        group: &str,
        consumer: &str,
        stream: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Delivery>, BrokerError> {
        let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(stream)
            .arg(group)
            .arg(consumer)
            .arg(min_idle.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut self.commands.clone())
            .await
            .map_err(|err| broker_error(err, stream, group))?;
        let ids: Vec<String> = reply.claimed.iter().map(|entry| entry.id.clone()).collect();
        if !reply.deleted_ids.is_empty() {
            // Trimmed by MAXLEN before anyone acknowledged them: still in the event store.
            tracing::warn!(
                stream,
                group,
                entries = reply.deleted_ids.len(),
                "pending entries were trimmed from the stream before being processed"
            );
        }
        let counts = self.delivery_counts(group, stream, &ids).await?;
        // A claimed entry has been delivered at least twice.
        let count_of = |id: &str| counts.get(id).map_or(2, |&n| n as u32);
        let (claimed, broken) = deliveries(stream, reply.claimed, count_of);
        self.discard(group, stream, &broken).await;
        Ok(claimed)
    }

    async fn range(
        &self,
        stream: &str,
        after: Option<&EntryId>,
        count: usize,
    ) -> Result<Vec<(EntryId, StreamMessage)>, BrokerError> {
        let start = after.map_or_else(|| "-".to_string(), |id| format!("({}", id.0));
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(stream)
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut self.commands.clone())
            .await
            .map_err(|err| broker_error(err, stream, ""))?;
        Ok(reply
            .ids
            .iter()
            .filter_map(|entry| Some((EntryId(entry.id.clone()), decode(stream, entry)?)))
            .collect())
    }

    async fn stream_len(&self, stream: &str) -> Result<u64, BrokerError> {
        redis::cmd("XLEN")
            .arg(stream)
            .query_async(&mut self.commands.clone())
            .await
            .map_err(|err| broker_error(err, stream, ""))
    }

    async fn lag(&self, group: &str, stream: &str) -> Result<u64, BrokerError> {
        let info = group_info(&self.commands, group, stream).await?;
        match info.lag {
            Some(lag) => Ok(lag as u64),
            // Redis cannot tell after some deletions: the entries delivered so far, when it
            // knows them, or else the stream's length, an upper bound (counting would transfer
            // every entry).
            None => {
                let length = self.stream_len(stream).await?;
                Ok(info
                    .entries_read
                    .map_or(length, |read| length.saturating_sub(read as u64)))
            }
        }
    }

    async fn pending(&self, group: &str, stream: &str) -> Result<u64, BrokerError> {
        Ok(group_info(&self.commands, group, stream).await?.pending as u64)
    }

    async fn trim(
        &self,
        stream: &str,
        cutoff: DateTime<Utc>,
        _limit: u32,
    ) -> Result<u64, BrokerError> {
        // Entry ids start with the time they were added, in milliseconds.
        redis::cmd("XTRIM")
            .arg(stream)
            .arg("MINID")
            .arg(cutoff.timestamp_millis().max(0))
            .query_async(&mut self.commands.clone())
            .await
            .map_err(|err| broker_error(err, stream, ""))
    }

    async fn leave_group(
        &self,
        group: &str,
        consumer: &str,
        stream: &str,
    ) -> Result<bool, BrokerError> {
        let holding: StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(stream)
            .arg(group)
            .arg("-")
            .arg("+")
            .arg(1)
            .arg(consumer)
            .query_async(&mut self.commands.clone())
            .await
            .map_err(|err| broker_error(err, stream, group))?;
        if !holding.ids.is_empty() {
            return Ok(false);
        }
        redis::cmd("XGROUP")
            .arg("DELCONSUMER")
            .arg(stream)
            .arg(group)
            .arg(consumer)
            .query_async::<u64>(&mut self.commands.clone())
            .await
            .map_err(|err| broker_error(err, stream, group))?;
        Ok(true)
    }

    async fn ping(&self) -> Result<(), BrokerError> {
        redis::cmd("PING")
            .query_async::<String>(&mut self.commands.clone())
            .await
            .map(drop)
            .map_err(|err| broker_error(err, "", ""))
    }
}

/// What XINFO GROUPS says of `group` on `stream`.
async fn group_info(
    commands: &ConnectionManager,
    group: &str,
    stream: &str,
) -> Result<redis::streams::StreamInfoGroup, BrokerError> {
    let no_group = || BrokerError::NoGroup {
        stream: stream.to_string(),
        group: group.to_string(),
    };
    let reply: redis::RedisResult<StreamInfoGroupsReply> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query_async(&mut commands.clone())
        .await;
    let reply = match reply {
        Ok(reply) => reply,
        // XINFO on a missing stream is an error rather than an empty list.
        Err(err) if err.to_string().contains("no such key") => return Err(no_group()),
        Err(err) => return Err(broker_error(err, stream, group)),
    };
    reply
        .groups
        .into_iter()
        .find(|info| info.name == group)
        .ok_or_else(no_group)
}
