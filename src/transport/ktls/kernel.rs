//! The kernel's side of kTLS (`Documentation/networking/tls.rst`): the `tls` upper-layer
//! protocol on a TCP socket, one direction's keys in the `linux/tls.h` layout built from what
//! rustls extracted, and record types through `recvmsg`/`sendmsg` control messages.
//!
//! Hand-written over `libc` (its `linux/tls.h` structures) rather than the `ktls` crate: that
//! crate wraps tokio-rustls streams and brings tokio-rustls, nix, tracing and more into the
//! shards for what is four `setsockopt` calls and two control messages here; and for TLS 1.2
//! AES-GCM it hands the kernel the explicit nonce rustls' first record already used (see
//! [`tls12_gcm_tx_nonce`]).
//!
//! Never: keeps key material after the `setsockopt` (a [`CryptoInfo`] is zeroed when dropped),
//! or blocks (every call on a socket is `MSG_DONTWAIT` or a `setsockopt`).

use rustls::{ConnectionTrafficSecrets, ProtocolVersion};
use std::io;
use std::os::fd::RawFd;

/// TLS record content types (RFC 8446 §5.1).
pub const RECORD_ALERT: u8 = 21;
pub const RECORD_HANDSHAKE: u8 = 22;
pub const RECORD_APPLICATION_DATA: u8 = 23;
/// The alert description of close_notify (RFC 8446 §6.1).
pub const ALERT_CLOSE_NOTIFY: u8 = 0;

fn setsockopt(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &[u8]) -> io::Result<()> {
    // SAFETY: `value` is a live, initialised buffer of `value.len()` bytes for the duration of
    // the call; the kernel copies it and keeps no pointer into it.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            value.as_ptr().cast(),
            value.len() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Put the `tls` upper-layer protocol on an established TCP socket. Until keys are set it
/// passes bytes through unchanged, so the rustls handshake runs over it as over TCP. ENOENT:
/// the kernel has no `tls` module (CONFIG_TLS off, or the module not loadable).
pub fn set_ulp(fd: RawFd) -> io::Result<()> {
    setsockopt(fd, libc::SOL_TCP, libc::TCP_ULP, b"tls")
}

/// Which way a set of keys protects records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// What the broker sends (`TLS_TX`).
    Tx,
    /// What the broker receives (`TLS_RX`).
    Rx,
}

/// One direction's keys, sequence number and nonce material as `SOL_TLS` takes them.
pub enum CryptoInfo {
    AesGcm128(libc::tls12_crypto_info_aes_gcm_128),
    AesGcm256(libc::tls12_crypto_info_aes_gcm_256),
    Chacha20Poly1305(libc::tls12_crypto_info_chacha20_poly1305),
}

/// What [`CryptoInfo::new`] cannot map (a suite the kernel or this code does not know).
#[derive(Debug)]
pub struct Unsupported(pub &'static str);

impl CryptoInfo {
    /// The kernel's view of one direction of a connection of `version`, from rustls'
    /// extracted `(sequence number, secrets)`.
    pub fn new(
        version: ProtocolVersion,
        direction: Direction,
        (seq, secrets): (u64, ConnectionTrafficSecrets),
    ) -> Result<CryptoInfo, Unsupported> {
        let (version, tls12) = match version {
            ProtocolVersion::TLSv1_2 => (libc::TLS_1_2_VERSION, true),
            ProtocolVersion::TLSv1_3 => (libc::TLS_1_3_VERSION, false),
            _ => return Err(Unsupported("TLS version")),
        };
        let rec_seq = seq.to_be_bytes();
        Ok(match secrets {
            // rustls names the variant by key length; take it from the key itself.
            ConnectionTrafficSecrets::Aes128Gcm { key, iv }
            | ConnectionTrafficSecrets::Aes256Gcm { key, iv } => {
                let (key, iv) = (key.as_ref(), iv.as_ref());
                if iv.len() != 12 {
                    return Err(Unsupported("AES-GCM IV length"));
                }
                let mut salt = [0u8; 4];
                salt.copy_from_slice(&iv[..4]);
                let mut explicit = [0u8; 8];
                explicit.copy_from_slice(&iv[4..]);
                if tls12 && direction == Direction::Tx {
                    // The kernel sends this explicit nonce and counts up from it (TLS 1.3
                    // instead XORs the IV with the sequence number, as rustls does).
                    explicit = tls12_gcm_tx_nonce(u64::from_be_bytes(explicit), seq).to_be_bytes();
                }
                match key.len() {
                    16 => CryptoInfo::AesGcm128(libc::tls12_crypto_info_aes_gcm_128 {
                        info: info(version, libc::TLS_CIPHER_AES_GCM_128),
                        iv: explicit,
                        key: key.try_into().map_err(|_| Unsupported("key"))?,
                        salt,
                        rec_seq,
                    }),
                    32 => CryptoInfo::AesGcm256(libc::tls12_crypto_info_aes_gcm_256 {
                        info: info(version, libc::TLS_CIPHER_AES_GCM_256),
                        iv: explicit,
                        key: key.try_into().map_err(|_| Unsupported("key"))?,
                        salt,
                        rec_seq,
                    }),
                    _ => return Err(Unsupported("AES-GCM key length")),
                }
            }
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                // The same nonce construction in 1.2 and 1.3 (IV XOR sequence number), in the
                // kernel as in rustls.
                CryptoInfo::Chacha20Poly1305(libc::tls12_crypto_info_chacha20_poly1305 {
                    info: info(version, libc::TLS_CIPHER_CHACHA20_POLY1305),
                    iv: iv.as_ref().try_into().map_err(|_| Unsupported("IV"))?,
                    key: key.as_ref().try_into().map_err(|_| Unsupported("key"))?,
                    salt: [],
                    rec_seq,
                })
            }
            _ => return Err(Unsupported("cipher suite")),
        })
    }

    /// The kernel's name of the cipher, for the log.
    pub fn cipher(&self) -> &'static str {
        match self {
            CryptoInfo::AesGcm128(_) => "AES-128-GCM",
            CryptoInfo::AesGcm256(_) => "AES-256-GCM",
            CryptoInfo::Chacha20Poly1305(_) => "ChaCha20-Poly1305",
        }
    }

    fn bytes(&mut self) -> &mut [u8] {
        fn raw<T>(v: &mut T) -> &mut [u8] {
            // SAFETY: the structures are plain `repr(C)` integers and byte arrays without
            // padding (checked by the size assertions in the tests); viewing them as bytes is
            // what the kernel does with them.
            unsafe { std::slice::from_raw_parts_mut((v as *mut T).cast(), size_of::<T>()) }
        }
        match self {
            CryptoInfo::AesGcm128(v) => raw(v),
            CryptoInfo::AesGcm256(v) => raw(v),
            CryptoInfo::Chacha20Poly1305(v) => raw(v),
        }
    }

    /// Give these keys to the socket's `tls` layer (`set_ulp` first).
    pub fn install(&mut self, fd: RawFd, direction: Direction) -> io::Result<()> {
        let name = match direction {
            Direction::Tx => libc::TLS_TX,
            Direction::Rx => libc::TLS_RX,
        };
        setsockopt(fd, libc::SOL_TLS, name, self.bytes())
    }
}

impl Drop for CryptoInfo {
    fn drop(&mut self) {
        // Keys do not outlive their hand-over to the kernel. Volatile, so the compiler cannot
        // drop the stores to memory that is about to be freed.
        for b in self.bytes() {
            // SAFETY: `b` is a valid, aligned, exclusive reference to one byte.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

fn info(version: u16, cipher_type: u16) -> libc::tls_crypto_info {
    libc::tls_crypto_info {
        version,
        cipher_type,
    }
}

/// TLS 1.2 AES-GCM: the explicit nonce the kernel sends first on a connection whose records
/// `0..seq` rustls already sent. rustls sent record `s` with the explicit nonce `e ^ s` (`e`:
/// the last 8 bytes of its IV); the kernel sends its `iv` field and adds one per record. Handing
/// it `e` itself (as the `ktls` crate does) repeats record 0's nonce under the same key on the
/// kernel's second record, which breaks GCM. The values `e ^ s` for `s < seq` lie in the block
/// of `2^bits` values aligned around `e` (`bits` the width of `seq - 1`); starting right above
/// it, the kernel's nonces reach it again only after 2^64 records.
pub fn tls12_gcm_tx_nonce(e: u64, seq: u64) -> u64 {
    if seq == 0 {
        return e;
    }
    let bits = 64 - (seq - 1).leading_zeros();
    if bits >= 64 {
        // 2^63 records sent: unreachable in practice; any value repeats one of them.
        return e;
    }
    let block = 1u64 << bits;
    (e & !(block - 1)).wrapping_add(block)
}

/// A record read with its type from a kTLS socket.
#[derive(Debug, PartialEq, Eq)]
pub enum Record {
    /// Application data: `n` bytes of it in the buffer.
    Data(usize),
    /// An alert (level, description).
    Alert(u8, u8),
    /// Any other record type (a handshake message after the handshake: KeyUpdate,
    /// NewSessionTicket).
    Other(u8),
}

/// Control message space for one `SOL_TLS` record type byte, aligned as `cmsghdr` needs.
#[repr(C, align(8))]
struct Cmsg([u8; 32]);

/// Read the record at the head of a kTLS socket's queue into `buf`, with its type. A plain
/// `recv` fails with EIO when the next record is not application data (it carries no type); the
/// record waits for a reader that asks for the type, as this one does.
pub fn recv_record(fd: RawFd, buf: &mut [u8]) -> io::Result<Record> {
    let mut control = Cmsg([0; 32]);
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is a valid "no address, no data" value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = control.0.len() as _;
    // SAFETY: `msg` points at `iov` (into `buf`) and `control`, all live and writable for the
    // call; MSG_DONTWAIT: never blocks the shard.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    let mut kind = RECORD_APPLICATION_DATA;
    // SAFETY: `msg` was filled in by recvmsg; CMSG_FIRSTHDR/CMSG_NXTHDR stay within
    // msg_controllen, and CMSG_DATA of a SOL_TLS/TLS_GET_RECORD_TYPE header has one byte.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_TLS && (*c).cmsg_type == libc::TLS_GET_RECORD_TYPE {
                kind = *libc::CMSG_DATA(c);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok(match kind {
        RECORD_APPLICATION_DATA => Record::Data(n),
        RECORD_ALERT if n >= 2 => Record::Alert(buf[0], buf[1]),
        other => Record::Other(other),
    })
}

/// Send a close_notify alert through the socket's `tls` layer, best effort (MSG_DONTWAIT: a
/// full socket gets none; MQTT has its own DISCONNECT).
pub fn send_close_notify(fd: RawFd) -> io::Result<()> {
    const WARNING: u8 = 1;
    let mut alert = [WARNING, ALERT_CLOSE_NOTIFY];
    let mut control = Cmsg([0; 32]);
    let mut iov = libc::iovec {
        iov_base: alert.as_mut_ptr().cast(),
        iov_len: alert.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is a valid "no address, no data" value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE/CMSG_LEN are arithmetic; the header and its one data byte fit in
    // `control` (32 bytes >= CMSG_SPACE(1) = 24 on 64-bit Linux), which outlives the call.
    let n = unsafe {
        msg.msg_controllen = libc::CMSG_SPACE(1) as _;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_TLS;
        (*c).cmsg_type = libc::TLS_SET_RECORD_TYPE;
        (*c).cmsg_len = libc::CMSG_LEN(1) as _;
        *libc::CMSG_DATA(c) = RECORD_ALERT;
        libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::crypto::cipher::{AeadKey, Iv};

    #[test]
    fn crypto_info_layouts_match_linux_tls_h() {
        // 4-byte header, then iv, key, salt, rec_seq: no padding the kernel would misread.
        assert_eq!(
            size_of::<libc::tls12_crypto_info_aes_gcm_128>(),
            4 + 8 + 16 + 4 + 8
        );
        assert_eq!(
            size_of::<libc::tls12_crypto_info_aes_gcm_256>(),
            4 + 8 + 32 + 4 + 8
        );
        assert_eq!(
            size_of::<libc::tls12_crypto_info_chacha20_poly1305>(),
            4 + 12 + 32 + 8
        );
    }

    #[test]
    fn tls12_gcm_tx_nonces_never_repeat_what_rustls_sent() {
        for e in [
            0u64,
            1,
            2,
            3,
            0xff,
            0x8000_0000_0000_0001,
            u64::MAX - 1,
            u64::MAX,
        ] {
            for seq in [0u64, 1, 2, 3, 4, 5, 17, 1000] {
                let start = tls12_gcm_tx_nonce(e, seq);
                for k in 0..4096u64 {
                    let sent_by_kernel = start.wrapping_add(k);
                    assert!(
                        sent_by_kernel ^ e >= seq,
                        "e={e:#x} seq={seq}: kernel record {k} repeats rustls' record {}",
                        sent_by_kernel ^ e
                    );
                }
            }
        }
        assert_eq!(
            tls12_gcm_tx_nonce(10, 1),
            11,
            "after Finished: the next value"
        );
    }

    /// (AeadKey's public constructor takes 32 bytes: an AES-256 key.)
    fn aes256(seq: u64) -> (u64, ConnectionTrafficSecrets) {
        let key = AeadKey::from([7u8; 32]);
        let iv = Iv::new([1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 9]);
        (seq, ConnectionTrafficSecrets::Aes256Gcm { key, iv })
    }

    #[test]
    fn tls13_and_tls12_receive_keep_rustls_nonce_material() {
        for (v, dir) in [
            (ProtocolVersion::TLSv1_3, Direction::Tx),
            (ProtocolVersion::TLSv1_3, Direction::Rx),
            (ProtocolVersion::TLSv1_2, Direction::Rx),
        ] {
            let info = CryptoInfo::new(v, dir, aes256(5)).expect("maps");
            let CryptoInfo::AesGcm256(i) = &info else {
                panic!("AES-256-GCM expected");
            };
            assert_eq!(i.salt, [1, 2, 3, 4]);
            assert_eq!(i.iv, [0, 0, 0, 0, 0, 0, 0, 9]);
            assert_eq!(i.rec_seq, 5u64.to_be_bytes());
            assert_eq!(&i.key, &[7u8; 32]);
            assert_eq!(i.info.cipher_type, libc::TLS_CIPHER_AES_GCM_256);
        }
        let info =
            CryptoInfo::new(ProtocolVersion::TLSv1_2, Direction::Tx, aes256(1)).expect("maps");
        let CryptoInfo::AesGcm256(tx12) = &info else {
            panic!("AES-256-GCM expected");
        };
        assert_eq!(
            tx12.iv,
            10u64.to_be_bytes(),
            "past rustls' Finished (9 ^ 0)"
        );
    }
}
