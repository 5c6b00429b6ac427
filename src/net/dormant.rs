//! Idle plain-TCP connections without a task (hibernation, as EMQX hibernates idle connection
//! processes). A connection that moved nothing for one to two sweep periods
//! (`hibernate_idle_ms`, see [`sweep`]) and has nothing pending gives up its serving task and
//! its glommio read poll: what stays is its engine, its link, its socket (a duplicate
//! descriptor, registered in one epoll set per shard) and a slot here. Bytes from the client
//! (epoll) or anything for it on its link (a delivery, a close request: the link's waker is a
//! slot key here) give it a serving task again, which carries on where the old one stopped.
//!
//! Owns: the shard's sleeping connections, their epoll set, and the task that wakes them.
//! Never: decodes or handles packets (a woken connection is served by `connection` again),
//! blocks (epoll is only asked with a zero timeout, after the ring said it is readable), or
//! touches another shard's connections.

use super::connection::{serve_attached, Guards};
use crate::engine::Engine;
use crate::session::ConnLink;
use bytes::BytesMut;
use glommio::net::TcpStream;
use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::task::{Poll, RawWaker, RawWakerVTable, Waker};

/// A connection while it sleeps.
pub(super) struct Dormant {
    pub(super) conn: Engine,
    pub(super) link: Rc<ConnLink>,
    pub(super) guards: Guards,
    pub(super) fd: OwnedFd,
}

/// A slot's key: generation (high 32 bits) and index (low 32 bits). The generation makes a
/// wake for a connection that already woke (its old key still in a waker) a no-op.
type Key = u64;

struct Slot {
    generation: u32,
    sleeper: Option<Box<Dormant>>,
}

struct Lot {
    epoll: OwnedFd,
    slots: Vec<Slot>,
    free: Vec<u32>,
}

thread_local! {
    /// This shard's lot; created by the first connection that sleeps.
    static LOT: RefCell<Option<Lot>> = const { RefCell::new(None) };
    /// Keys woken through links since the lot task last ran. Apart from [`LOT`], so a wake
    /// (from anywhere on the shard) never needs the lot's borrow.
    static WOKEN: RefCell<Vec<Key>> = const { RefCell::new(Vec::new()) };
    static LOT_WAKER: Cell<Option<Waker>> = const { Cell::new(None) };
}

/// How many connections sleep on this shard (for statistics).
pub fn asleep() -> usize {
    // Every slot not on the free list holds a sleeper.
    LOT.with(|l| {
        l.borrow()
            .as_ref()
            .map_or(0, |l| l.slots.len() - l.free.len())
    })
}

/// Put a connection to sleep. If the epoll set cannot take it, it is served again at once.
pub(super) fn sleep(d: Box<Dormant>) {
    let fd = d.fd.as_raw_fd();
    let link = d.link.clone();
    let placed = LOT.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            match epoll_create() {
                Ok(epoll) => {
                    glommio::spawn_local(lot_task(epoll.as_raw_fd())).detach();
                    *cell = Some(Lot {
                        epoll,
                        slots: Vec::new(),
                        free: Vec::new(),
                    });
                }
                Err(e) => {
                    log::warn!("epoll_create1 for sleeping connections: {e}");
                    return Err(d);
                }
            }
        }
        let Some(lot) = cell.as_mut() else {
            return Err(d);
        };
        let index = match lot.free.pop() {
            Some(i) => i,
            None => {
                let Ok(i) = u32::try_from(lot.slots.len()) else {
                    return Err(d);
                };
                lot.slots.push(Slot {
                    generation: 0,
                    sleeper: None,
                });
                i
            }
        };
        let slot = &mut lot.slots[index as usize];
        let key = (u64::from(slot.generation) << 32) | u64::from(index);
        if let Err(e) = epoll_add(lot.epoll.as_raw_fd(), fd, key) {
            log::debug!("epoll_ctl for a sleeping connection: {e}");
            lot.free.push(index);
            return Err(d);
        }
        slot.sleeper = Some(d);
        Ok(key)
    });
    match placed {
        Ok(key) => {
            let mut info = link.info();
            info.fd = fd;
            link.set_info(info);
            link.set_asleep(true);
            SLEPT_SINCE_COLLECT.with(|c| c.set(c.get().saturating_add(1)));
            // From now on what the link wakes is this slot. Anything written to it since the
            // serving task's last look (a delivery, a close request) was seen by that look:
            // the task only sleeps after a wait found nothing to do.
            link.register(&slot_waker(key));
        }
        Err(d) => {
            // The epoll set refused it (e.g. `max_user_watches`): this connection stays awake
            // from now on instead of trying again every sweep.
            d.link.set_can_doze(false);
            resume(d)
        }
    }
}

/// Give a sleeping connection a serving task again. Spawned straight from here: a task
/// that awaited `serve_attached` would keep room for the parts besides its future.
fn resume(d: Box<Dormant>) {
    let Dormant {
        conn,
        link,
        guards,
        fd,
    } = *d;
    link.set_asleep(false);
    // SAFETY: `fd` is an open socket this connection owns; the stream takes it over.
    let stream = unsafe { TcpStream::from_raw_fd(fd.into_raw_fd()) };
    glommio::spawn_local(serve_attached(conn, stream, link, BytesMut::new(), guards)).detach();
}

/// Take the sleeper out of its slot (if the key is still its) and out of the epoll set.
fn take(key: Key) -> Option<Box<Dormant>> {
    LOT.with(|cell| {
        let mut cell = cell.borrow_mut();
        let lot = cell.as_mut()?;
        let index = (key & u64::from(u32::MAX)) as u32;
        let slot = lot.slots.get_mut(index as usize)?;
        if u64::from(slot.generation) != key >> 32 {
            return None;
        }
        let d = slot.sleeper.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        lot.free.push(index);
        epoll_del(lot.epoll.as_raw_fd(), d.fd.as_raw_fd());
        Some(d)
    })
}

/// Wakes the connections whose sockets became readable or whose links were written to.
async fn lot_task(epoll: RawFd) {
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS_PER_CALL];
    loop {
        let woken = std::future::poll_fn(|cx| {
            if WOKEN.with(|w| !w.borrow().is_empty()) {
                return Poll::Ready(());
            }
            LOT_WAKER.with(|w| w.set(Some(cx.waker().clone())));
            Poll::Pending
        });
        let readable = async {
            if let Err(e) = glommio::net::wait_readable(epoll).await {
                log::warn!("waiting on the sleeping connections' epoll set: {e}");
                glommio::timer::sleep(std::time::Duration::from_millis(100)).await;
            }
        };
        futures_lite::future::or(woken, readable).await;
        let mut keys = WOKEN.with(|w| std::mem::take(&mut *w.borrow_mut()));
        loop {
            // SAFETY: `events` is a valid buffer of EVENTS_PER_CALL entries; timeout 0.
            let n =
                unsafe { libc::epoll_wait(epoll, events.as_mut_ptr(), EVENTS_PER_CALL as i32, 0) };
            if n <= 0 {
                break;
            }
            keys.extend(events[..n as usize].iter().map(|e| e.u64));
            if (n as usize) < EVENTS_PER_CALL {
                break;
            }
        }
        for key in keys {
            if let Some(d) = take(key) {
                resume(d);
            }
        }
    }
}

const EVENTS_PER_CALL: usize = 256;

// Keys travel in a waker's data pointer.
const _: () = assert!(usize::BITS >= 64);

fn epoll_create() -> std::io::Result<OwnedFd> {
    // SAFETY: plain syscall; the descriptor is owned by the result.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn epoll_add(epoll: RawFd, fd: RawFd, key: Key) -> std::io::Result<()> {
    // Level-triggered: bytes that arrived before the registration wake it at once.
    let mut ev = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLRDHUP) as u32,
        u64: key,
    };
    // SAFETY: valid descriptors and a valid event.
    if unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn epoll_del(epoll: RawFd, fd: RawFd) {
    let mut ev = libc::epoll_event { events: 0, u64: 0 };
    // SAFETY: valid descriptors; a failure leaves nothing to undo (the descriptor closes
    // later, which removes it from the set anyway).
    unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_DEL, fd, &mut ev) };
}

/// The waker a sleeping connection's link holds: its slot key, no allocation. Waking records
/// the key for the lot task. Links live on their shard's thread, so this waker is only woken
/// there; were it woken elsewhere it would record the key in that thread's list, where the
/// generation check or an empty lot makes it a no-op.
fn slot_waker(key: Key) -> Waker {
    // SAFETY: the vtable's functions treat the data pointer as a plain integer (the key) and
    // never dereference it, so any value is valid for every one of them.
    unsafe { Waker::from_raw(raw_slot_waker(key)) }
}

fn raw_slot_waker(key: Key) -> RawWaker {
    RawWaker::new(key as usize as *const (), &SLOT_WAKER_VTABLE)
}

static SLOT_WAKER_VTABLE: RawWakerVTable =
    RawWakerVTable::new(slot_clone, slot_wake, slot_wake, slot_drop);

fn slot_clone(data: *const ()) -> RawWaker {
    raw_slot_waker(data as usize as Key)
}

fn slot_wake(data: *const ()) {
    WOKEN.with(|w| w.borrow_mut().push(data as usize as Key));
    if let Some(w) = LOT_WAKER.with(|w| w.take()) {
        w.wake();
    }
}

fn slot_drop(_: *const ()) {}

/// Once a tick (the shard's control task): a tick after connections fell asleep, give the
/// pages their tasks and polls freed back to the OS. mimalloc frees and purges a thread's
/// empty pages only as that thread allocates and frees later, which an idle shard may not do
/// for a long time, so the memory stayed resident (measured: 4,000 sleepers kept 2.2 kB each
/// instead of 1.1 kB). Forced: an unforced collection leaves the purge to a later one (its
/// delay), and the next comes a sweep later at the earliest. It walks the whole heap (1.6 ms
/// for a 21 MB heap with 12,000 sleepers), so only after [`COLLECT_AFTER_SLEEPS`] sleeps: a
/// few connections falling asleep free too little to be worth a pause of the shard.
pub fn collect_after_sleeps() {
    if SLEPT_SINCE_COLLECT.with(|c| c.get()) < COLLECT_AFTER_SLEEPS {
        return;
    }
    SLEPT_SINCE_COLLECT.with(|c| c.set(0));
    let t0 = std::time::Instant::now();
    // SAFETY: `mi_collect` takes no pointers; it works on this thread's heap only.
    unsafe { libmimalloc_sys::mi_collect(true) }
    log::debug!("heap collected after sleeps in {:?}", t0.elapsed());
}

/// About 256 kB of tasks and polls freed.
const COLLECT_AFTER_SLEEPS: u32 = 256;

thread_local! {
    /// Connections that fell asleep since the last collection.
    static SLEPT_SINCE_COLLECT: Cell<u32> = const { Cell::new(0) };
}

/// The idle sweep of one shard's connections, every half `hibernate_idle_ms`: a link that
/// moved nothing since the last sweep is asked to sleep, and its task woken to do so (it
/// declines if something is pending).
pub fn sweep(links: impl Iterator<Item = Rc<ConnLink>>) {
    for link in links {
        if link.sweep_idle() {
            link.wake();
        }
    }
}
