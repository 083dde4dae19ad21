//! (Foundation stub: lands with its issue.)
