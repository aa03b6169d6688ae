//! mod_ssl's certificate variables, as ucspi-ssl formats them (to be written).
