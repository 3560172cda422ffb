//! The edge's counts: open client connections (all, and per client address) and requests in
//! flight. Each is held by a guard whose drop gives it back, so every exit path releases it.

use super::memory::MemoryWatch;
use crate::config::edge::EdgeSettings;
use crate::metrics::METRICS;
use crate::types::refusal::Shed;
use pingora::protocols::GetSocketDigest;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
pub struct EdgeSlots {
    connections: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    in_flight: AtomicUsize,
    memory: MemoryWatch,
}

/// One open connection.
pub struct ConnectionSlot {
    slots: Arc<EdgeSlots>,
    ip: Option<IpAddr>,
}

/// One request being served.
pub struct RequestSlot {
    slots: Arc<EdgeSlots>,
}

fn peer_ip(stream: &dyn GetSocketDigest) -> Option<IpAddr> {
    let digest = stream.get_socket_digest()?;
    let addr = digest.peer_addr()?.as_inet()?.ip();
    Some(crate::config::canonical_ip(addr))
}

impl EdgeSlots {
    /// Take a connection slot, or say which cap is full (the connection is then answered
    /// 503 and closed).
    pub fn open(
        self: &Arc<Self>,
        stream: &dyn GetSocketDigest,
        edge: &EdgeSettings,
    ) -> Result<ConnectionSlot, Shed> {
        let total = self.connections.fetch_add(1, Ordering::Relaxed) + 1;
        METRICS.client_connections.inc();
        let ip = (edge.max_connections_per_ip > 0)
            .then(|| peer_ip(stream))
            .flatten();
        let mut slot = ConnectionSlot {
            slots: Arc::clone(self),
            ip: None,
        };
        if edge.max_connections > 0 && total > edge.max_connections {
            return Err(Shed::Connections);
        }
        if let Some(ip) = ip {
            let mut map = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
            let n = map.entry(ip).or_insert(0);
            *n += 1;
            slot.ip = Some(ip);
            if *n > edge.max_connections_per_ip {
                return Err(Shed::ClientConnections);
            }
        }
        Ok(slot)
    }

    /// Take a request slot, or say which cap sheds the request.
    pub fn begin_request(self: &Arc<Self>, edge: &EdgeSettings) -> Result<RequestSlot, Shed> {
        if self.memory.over(edge.shed_above_memory) {
            return Err(Shed::Memory);
        }
        let n = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        let slot = RequestSlot {
            slots: Arc::clone(self),
        };
        if edge.max_in_flight > 0 && n > edge.max_in_flight {
            return Err(Shed::InFlight);
        }
        Ok(slot)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.slots.connections.fetch_sub(1, Ordering::Relaxed);
        METRICS.client_connections.dec();
        if let Some(ip) = self.ip {
            let mut map = self.slots.per_ip.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = map.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&ip);
                }
            }
        }
    }
}

impl Drop for RequestSlot {
    fn drop(&mut self) {
        self.slots.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
