//! The API Keys pages: the list (`list`), the editor that creates or links a key (`editor`), and one
//! key's Details tab and deletion (`details`), and the removal of other accounts' links to a key (`links`). The access codes tab is `web::access_codes`.

mod details;
mod editor;
pub mod links;
mod list;

pub use details::{confirm_delete_api_key, delete_api_key, show_api_key, update_api_key};
pub use editor::{EditorMode, create_api_key, new_api_key};
pub use list::list_api_keys;
