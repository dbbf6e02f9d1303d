//! uTP (BEP 29) structural checks. (Being written.)
