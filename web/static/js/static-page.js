// Pages without behaviour (terms, privacy, invalid link): only the translation.
import "./i18n.js";
