//! mod_ssl's certificate variables, as ucspi-ssl formats them (stub until the module
//! lands).

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Server,
    Client,
}

#[derive(Debug)]
pub struct BadCertificate;

pub fn cert_vars(
    _side: Side,
    _der: &[u8],
    _push: &mut dyn FnMut(&str, &[u8]),
) -> Result<(), BadCertificate> {
    Ok(())
}

pub fn chain_vars(_side: Side, _chain: &[&[u8]], _push: &mut dyn FnMut(&str, &[u8])) {}

pub fn pem(_der: &[u8]) -> Vec<u8> {
    Vec::new()
}
