//! Re-authentication on a connected session [MQTT-4.12.1]: AUTH 0x19 starts it with the
//! CONNECT's method, AUTH 0x18 continues it, and a failure disconnects.
//!
//! Never: switches methods mid-connection, or blocks on a credential lookup (methods are
//! sans-IO, see [`crate::auth`]).

use super::{Close, Engine};
use crate::auth::{AuthExchange, AuthStep};
use crate::codec::{self, Packet, Properties};
use bytestring::ByteString;

/// The enhanced authentication method of CONNECT (re-authentication must use it) and the
/// re-authentication in progress, if any [MQTT-4.12.1].
pub(super) struct EnhancedAuth {
    method: ByteString,
    exchange: Option<Box<dyn AuthExchange>>,
}

impl EnhancedAuth {
    pub(super) fn new(method: ByteString) -> Box<EnhancedAuth> {
        Box::new(EnhancedAuth {
            method,
            exchange: None,
        })
    }
}

impl Engine {
    pub(super) fn on_auth(&mut self, a: codec::Auth) -> Result<(), Close> {
        let Some(auth) = self.auth.as_deref_mut() else {
            return Err(Close::Protocol(0x82)); // AUTH without a method in CONNECT [MQTT-4.12.0-7]
        };
        let method = auth.method.clone();
        if a.properties.authentication_method.as_ref() != Some(&method) {
            return Err(Close::Protocol(0x82)); // [MQTT-4.12.1-1]
        }
        let data = a.properties.authentication_data.as_deref();
        let step = match (a.reason, auth.exchange.as_mut()) {
            (0x19, None) => {
                let Some(m) = self.ctx.auth.get(&method) else {
                    return Err(Close::Protocol(0x8C));
                };
                let (ex, step) = m.start(data);
                auth.exchange = ex;
                step
            }
            (0x18, Some(ex)) => ex.step(data),
            _ => return Err(Close::Protocol(0x82)),
        };
        let (reason, data) = match step {
            AuthStep::Continue(d) => (0x18, Some(d)),
            AuthStep::Success(d) => {
                auth.exchange = None;
                (0x00, d)
            }
            // DISCONNECT has no 0x86 or 0x8C: a failed re-authentication is 0x87 Not
            // authorized [MQTT-4.12.1-2].
            AuthStep::Fail(_) => return Err(Close::Protocol(0x87)),
        };
        self.write(Packet::Auth(codec::Auth {
            reason,
            properties: Properties {
                authentication_method: Some(method),
                authentication_data: data,
                ..Properties::default()
            },
        }));
        Ok(())
    }
}
