//! Enums stored (and sent) as text: one macro gives each its text, its parse, and the conversions
//! diesel uses (`#[diesel(deserialize_as = String, serialize_as = String)]` on the field), so that an
//! unknown stored value is an error when the row is read — never a silent default.

/// A stored text that names no variant of the enum it was read into.
#[derive(Debug, thiserror::Error)]
#[error("unknown {what} {value:?} in the database")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
}

/// `text_enum! { /// doc  pub enum Role("role") { /// doc  Owner = "owner", … } }` defines the enum with
/// `as_str`, `parse`, `ALL`, `Display`, `TryFrom<String>` (error [`UnknownValue`]) and `From<_> for String`.
#[macro_export]
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The text it is stored and shown as.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text ),+
                }
            }

            /// The variant this text names, if any.
            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $( $text => Some($name::$variant), )+
                    _ => None,
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::text_enum::UnknownValue;

            fn try_from(stored: String) -> Result<Self, Self::Error> {
                $name::parse(&stored).ok_or($crate::text_enum::UnknownValue {
                    what: $what,
                    value: stored,
                })
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.as_str().to_owned()
            }
        }
    };
}

#[cfg(test)]
mod tests {
    crate::text_enum! {
        /// A test enum.
        pub enum Colour("colour") {
            Red = "red",
            Blue = "blue",
        }
    }

    #[test]
    fn every_variant_round_trips_through_its_text_and_unknown_text_is_an_error() {
        for &colour in Colour::ALL {
            assert_eq!(Colour::try_from(String::from(colour)).unwrap(), colour);
            assert_eq!(colour.to_string(), colour.as_str());
        }
        let err = Colour::try_from("Red".to_owned()).unwrap_err();
        assert_eq!(err.value, "Red");
        assert_eq!(err.to_string(), r#"unknown colour "Red" in the database"#);
        assert_eq!(Colour::parse(""), None);
    }
}
