//! Exit statuses, and the errors that lead to them.

use std::fmt;

/// Exit status: everything read and written.
pub const EXIT_OK: u8 = 0;
/// Exit status: a failure while running (an output could not be written).
pub const EXIT_FAILURE: u8 = 1;
/// Exit status: bad arguments, rules or inputs; nothing was counted.
pub const EXIT_USAGE: u8 = 2;
/// Exit status: some capture was corrupt part-way; what came before was counted and written.
pub const EXIT_INPUT_ERROR: u8 = 3;

/// Why a subcommand did not succeed; the message is printed as `bittap: MESSAGE`.
#[derive(Debug)]
pub enum Error {
    /// Bad arguments, rules or inputs; nothing was counted.
    Usage(String),
    /// A failure while running.
    Failure(String),
    /// A failure already reported on stderr.
    Reported,
    /// Some capture was corrupt part-way; what came before was counted and written.
    Incomplete(String),
}

impl Error {
    pub fn code(&self) -> u8 {
        match self {
            Error::Usage(_) => EXIT_USAGE,
            Error::Failure(_) | Error::Reported => EXIT_FAILURE,
            Error::Incomplete(_) => EXIT_INPUT_ERROR,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) | Error::Failure(m) | Error::Incomplete(m) => f.write_str(m),
            Error::Reported => Ok(()),
        }
    }
}

/// The exit status of a subcommand's result, its message printed.
pub fn status(r: Result<(), Error>) -> u8 {
    match r {
        Ok(()) => EXIT_OK,
        Err(e) => {
            if !matches!(e, Error::Reported) {
                eprintln!("bittap: {e}");
            }
            e.code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_status() {
        assert_eq!(status(Ok(())), EXIT_OK);
        assert_eq!(status(Err(Error::Usage("u".into()))), EXIT_USAGE);
        assert_eq!(status(Err(Error::Failure("f".into()))), EXIT_FAILURE);
        assert_eq!(status(Err(Error::Reported)), EXIT_FAILURE);
        assert_eq!(status(Err(Error::Incomplete("i".into()))), EXIT_INPUT_ERROR);
        assert_eq!(Error::Usage("bad flag".into()).to_string(), "bad flag");
    }
}
