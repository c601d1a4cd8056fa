//! Storage bugs a test or the simulator can switch on, to prove its checks would catch them:
//! each is a real mistake a storage engine can make. They exist only in debug builds (the
//! release binary compiles every check below to `false`), and a switch is per thread, so
//! tests running in parallel do not see each other's.
//!
//! This module owns the switches; the storage code that each names reads it at the one
//! place the bug would live.

/// One deliberate storage bug.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StorageBug {
    #[default]
    None,
    /// The WAL creates a new segment at rotation and never fsyncs its directory, so after a
    /// power loss the segment, with entries acknowledged from it, may be gone.
    SkipSegmentDirectorySync,
    /// Recovery cuts a complete record that fails its checksum as if a crash had torn it,
    /// losing what was acknowledged from it.
    CutDamagedRecords,
    /// A snapshot is written straight over its final file instead of to a temporary file
    /// renamed into place, so a crash mid-write leaves a damaged newest snapshot.
    OverwriteSnapshotInPlace,
}

#[cfg(debug_assertions)]
thread_local! {
    static ACTIVE: std::cell::Cell<StorageBug> = const { std::cell::Cell::new(StorageBug::None) };
}

/// Switches `bug` on for this thread until the guard is dropped.
#[must_use = "the bug is switched off again when the guard is dropped"]
pub fn inject(bug: StorageBug) -> InjectedGuard {
    #[cfg(debug_assertions)]
    ACTIVE.with(|active| active.set(bug));
    #[cfg(not(debug_assertions))]
    assert!(bug == StorageBug::None, "storage bugs can be injected only in debug builds");
    InjectedGuard(())
}

/// Switches the injected bug off when dropped.
#[derive(Debug)]
pub struct InjectedGuard(());

impl Drop for InjectedGuard {
    fn drop(&mut self) {
        #[cfg(debug_assertions)]
        ACTIVE.with(|active| active.set(StorageBug::None));
    }
}

/// Whether `bug` is switched on for this thread (always false in release builds).
pub(crate) fn active(bug: StorageBug) -> bool {
    #[cfg(debug_assertions)]
    return ACTIVE.with(|active| active.get()) == bug && bug != StorageBug::None;
    #[cfg(not(debug_assertions))]
    {
        let _ = bug;
        false
    }
}
