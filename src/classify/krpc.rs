//! Bencode and DHT KRPC (BEP 5) validation. (Being written.)
