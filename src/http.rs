//! (Foundation: in progress.)
