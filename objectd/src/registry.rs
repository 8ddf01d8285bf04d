//! The classes a node can run, by name.

use clouds::{Class, ClassInfo, InvokeError};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Clone, Default)]
pub struct Registry {
    classes: BTreeMap<String, Arc<dyn Class>>,
}

impl Registry {
    /// The standard classes (stdobjects) and the name service's `Directory`.
    pub fn standard() -> Registry {
        let mut r = Registry::default();
        for c in stdobjects::classes().into_iter().chain(naming::classes()) {
            r.add(c).expect("standard class names are distinct");
        }
        r
    }

    /// Adds a class; a second class with the same name is refused.
    pub fn add(&mut self, class: Arc<dyn Class>) -> Result<(), String> {
        let name = class.info().name.clone();
        if self.classes.contains_key(&name) {
            return Err(format!("class `{name}` is registered twice"));
        }
        self.classes.insert(name, class);
        Ok(())
    }

    /// Adds the class of `T`.
    pub fn with<T: clouds::Object>(mut self) -> Result<Registry, String> {
        self.add(clouds::class_of::<T>())?;
        Ok(self)
    }

    pub fn get(&self, name: &str) -> Result<&Arc<dyn Class>, InvokeError> {
        self.classes.get(name).ok_or_else(|| InvokeError::NoSuchClass {
            class: name.to_string(),
            available: self.classes.keys().cloned().collect(),
        })
    }

    pub fn infos(&self) -> Vec<ClassInfo> {
        self.classes.values().map(|c| c.info().clone()).collect()
    }
}
