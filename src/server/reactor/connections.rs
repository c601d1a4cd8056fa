//! The connection slab. A connection is addressed by index *and* generation, packed
//! into the mio `Token`, so a late reply for a closed connection can never reach a
//! new connection that reuses its slot.

use mio::Token;

use crate::core::ConnectionId;

/// Tokens at the top of the range belong to the listeners and the waker; connection
/// indexes stay far below them (`max_connections` is at most a million).
pub(crate) const WAKER_TOKEN: Token = Token(usize::MAX);
pub(crate) const CLIENT_LISTENER_TOKEN: Token = Token(usize::MAX - 1);
pub(crate) const PEER_LISTENER_TOKEN: Token = Token(usize::MAX - 2);
pub(crate) const RESP_LISTENER_TOKEN: Token = Token(usize::MAX - 3);

pub(crate) fn token_of(id: ConnectionId) -> Token {
    Token(usize::try_from(id.0).expect("64-bit usize: mio tokens hold a packed ConnectionId"))
}

pub(crate) fn id_of(token: Token) -> ConnectionId {
    ConnectionId(token.0 as u64)
}

fn pack(index: u32, generation: u32) -> ConnectionId {
    ConnectionId((u64::from(generation) << 32) | u64::from(index))
}

fn unpack(id: ConnectionId) -> (usize, u32) {
    ((id.0 & u64::from(u32::MAX)) as usize, (id.0 >> 32) as u32)
}

struct Slot<C> {
    generation: u32,
    value: Option<C>,
}

/// A fixed-capacity slab of connections.
pub(crate) struct Slab<C> {
    slots: Vec<Slot<C>>,
    free: Vec<u32>,
    capacity: usize,
    len: usize,
}

impl<C> Slab<C> {
    pub(crate) fn new(capacity: usize) -> Self {
        assert!(capacity < (u32::MAX as usize) - 3, "slab capacity {capacity} too large");
        Slab { slots: Vec::new(), free: Vec::new(), capacity, len: 0 }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_full(&self) -> bool {
        self.len >= self.capacity
    }

    /// Stores `make(id)` under a fresh id; `None` when the slab is full.
    pub(crate) fn insert_with(
        &mut self,
        make: impl FnOnce(ConnectionId) -> C,
    ) -> Option<ConnectionId> {
        if self.is_full() {
            return None;
        }
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(Slot { generation: 0, value: None });
                u32::try_from(self.slots.len() - 1).expect("capacity checked in new")
            }
        };
        let slot = &mut self.slots[index as usize];
        assert!(slot.value.is_none(), "slab: free slot {index} is occupied");
        let id = pack(index, slot.generation);
        slot.value = Some(make(id));
        self.len += 1;
        Some(id)
    }

    pub(crate) fn get_mut(&mut self, id: ConnectionId) -> Option<&mut C> {
        let (index, generation) = unpack(id);
        let slot = self.slots.get_mut(index)?;
        if slot.generation != generation {
            return None;
        }
        slot.value.as_mut()
    }

    /// Removes the connection; its id (and any reply addressed to it) goes stale.
    pub(crate) fn remove(&mut self, id: ConnectionId) -> Option<C> {
        let (index, generation) = unpack(id);
        let slot = self.slots.get_mut(index)?;
        if slot.generation != generation {
            return None;
        }
        let value = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index as u32);
        self.len -= 1;
        Some(value)
    }

    pub(crate) fn ids(&self) -> Vec<ConnectionId> {
        let occupied = self.slots.iter().enumerate().filter(|(_, slot)| slot.value.is_some());
        occupied.map(|(index, slot)| pack(index as u32, slot.generation)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_slot_does_not_answer_to_the_old_id() {
        let mut slab = Slab::new(4);
        let first = slab.insert_with(|_| "first").expect("room");
        assert_eq!(slab.remove(first), Some("first"));
        let second = slab.insert_with(|_| "second").expect("room");
        assert_ne!(first, second, "same slot, new generation");
        assert!(slab.get_mut(first).is_none());
        assert_eq!(slab.get_mut(second).copied(), Some("second"));
        assert_eq!(slab.remove(first), None);
    }

    #[test]
    fn a_full_slab_refuses_inserts() {
        let mut slab = Slab::new(2);
        slab.insert_with(|_| 1).expect("room");
        slab.insert_with(|_| 2).expect("room");
        assert!(slab.insert_with(|_| 3).is_none());
        assert_eq!(slab.len(), 2);
    }

    #[test]
    fn ids_round_trip_through_tokens() {
        let id = pack(7, 9);
        assert_eq!(id_of(token_of(id)), id);
        assert_eq!(unpack(id), (7, 9));
    }
}
