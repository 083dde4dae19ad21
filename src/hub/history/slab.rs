//! A slab of parked wakers: one slot per waiting subscriber, reused while
//! the slab's generation holds (see the module docs of `history`).

use std::task::Waker;

use super::Cursor;

/// Parked wakers, their free slots, and the generation that makes every
/// slot index void at once when the slab is emptied.
#[derive(Default)]
pub(super) struct Slab {
    slots: Vec<Option<Waker>>,
    free: Vec<u32>,
    /// Slot indexes of another generation are void.
    pub(super) generation: u64,
}

impl Slab {
    /// An empty slab of `generation`.
    pub(super) fn new(generation: u64) -> Self {
        Self {
            generation,
            ..Self::default()
        }
    }

    /// Every parked waker, taken; the slab starts over empty under
    /// `generation`, so no cursor's slot index matches any more.
    pub(super) fn take(&mut self, generation: u64) -> Vec<Option<Waker>> {
        self.generation = generation;
        self.free.clear();
        std::mem::take(&mut self.slots)
    }

    /// Parks `waker` in the cursor's slot, reusing it while the generation holds.
    pub(super) fn park(&mut self, cursor: &mut Cursor, waker: &Waker) {
        if cursor.slot_generation == self.generation
            && let Some(Some(parked)) = self.slots.get_mut(cursor.slot as usize)
        {
            if !parked.will_wake(waker) {
                parked.clone_from(waker);
                cursor.parked = Some(waker.clone());
            }
            return;
        }
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(waker.clone());
                slot
            }
            None => {
                self.slots.push(Some(waker.clone()));
                // More than 4 billion parked subscribers cannot exist (connection caps).
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        cursor.slot = slot;
        cursor.slot_generation = self.generation;
        cursor.parked = Some(waker.clone());
    }

    /// Empties a departing cursor's slot, if it still holds it.
    pub(super) fn unpark(&mut self, cursor: &Cursor) {
        if cursor.slot_generation == self.generation
            && let Some(parked) = self.slots.get_mut(cursor.slot as usize)
            && parked.take().is_some()
        {
            self.free.push(cursor.slot);
        }
    }

    /// Slots, parked or free (for tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }
}
