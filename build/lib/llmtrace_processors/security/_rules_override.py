"""Rules: instruction override, task switch, role injection, delimiter/template tokens.

Weights say how much one match alone means "attack" (flagged from 0.5 when combined).
Patterns run on normalised text (one space between words, ASCII punctuation).
"""

from __future__ import annotations

from llmtrace_processors.security.scoring import Anchor, Damp, Rule, rule

__all__ = ["OVERRIDE_RULES"]

OVERRIDE = "prompt_injection.instruction_override"
ROLE = "prompt_injection.role_injection"
DELIMITER = "prompt_injection.delimiter"

_Q = (Damp.QUESTION, Damp.NEGATION, Damp.QUOTED)
_MINE = r"\b(?:my|mine|our|meine?\w*|unsere?\w*)\b"  # the user retracting their own words

# --- English -----------------------------------------------------------------------------
_VERB = (
    r"(?:ignor(?:e|ing)|disregard(?:ing)?|forget(?:ting)?|forgot|overrid(?:e|ing)|"
    r"bypass(?:ing)?|neglect|abandon|discard|scrap|dismiss|set\s+aside|put\s+aside|"
    r"throw\s+(?:away|out)|pay\s+no\s+attention\s+to|stop\s+(?:following|obeying)|"
    r"(?:do\s+not|don't|no\s+longer)\s+(?:follow|obey|adhere\s+to|comply\s+with)|disobey|"
    r"nullify|revoke|unlearn|drop)"
)
_GAP = r"(?:[\w'-]+\s+){0,3}?"
# Determiners/qualifiers that aim the verb at the model's standing instructions.
_AIMED = (
    r"(?:all|any|every|your|the\s+(?:previous|prior|above|earlier|preceding|initial|original|"
    r"system|existing|current|given|old|default|first)|previous(?:ly)?|prior|above|earlier|"
    r"preceding|foregoing|former|initial|original|existing|system|default|pre-?set|built-?in|"
    r"hidden|underlying|developer|safety|ethical|moral)"
)
_INSTR = (
    r"(?:instructions?|directives?|directions|commands|orders|rules|guidelines|guidance|"
    r"prompts?|programming|training|polic(?:y|ies)|guardrails|filters|safeguards|"
    r"restrictions|constraints|limitations|protocols|principles|ethics|morals|conditioning|"
    r"tasks|assignments|briefing|context)"
)
# Objects that are instructions only when aimed ("ignore all previous information").
_INSTR_WEAK = (
    r"(?:information|input|inputs|messages?|text|content|conversation|data|statements?|"
    r"sentences?|words|requests?|questions?|answers?|task|documents?|articles?|sources|"
    r"search\s+results|results|passages|snippets|thoughts|memor(?:y|ies)|knowledge)"
)
_EVERYTHING = (
    r"(?:(?:about\s+)?(?:every?\s?thing|everthing|anything)|all(?:\s+of)?\s+(?:that|this|it|the\s+above)|"
    r"all\s+that|the\s+above|what\s+(?:you\s+(?:were|have\s+been|had\s+been|was)\s+"
    r"(?:told|given|taught|instructed)|(?:i|we)\s+(?:said|told\s+you|wrote|asked)))"
)
_BEFORE = (
    r"(?:before|above|prior|previously|earlier|so\s+far|until\s+now|up\s+to\s+(?:now|this\s+"
    r"point)|we\s+(?:discussed|talked\s+about|said)|(?:i|we)\s+(?:said|told\s+you)|you\s+"
    r"(?:were|have\s+been)\s+told|(?:that|this)\s+(?:came|was\s+said)\s+before)"
)

# --- German ------------------------------------------------------------------------------
_VERB_DE = (
    r"(?:ignorier\w*|vergiss|vergesst|vergessen\s+sie|vergiß|vergesse|missacht\w*|"
    r"übergeh\w*|überspring\w*|verwirf|verwerf\w*|lösch\w*|beachte\s+nicht|"
    r"befolge\s+nicht|setze?\s+(?:[\w-]+\s+){0,3}außer\s+kraft)"
)
_AIMED_DE = (
    r"(?:alle\w*|vorherig\w*|bisherig\w*|obig\w*|vorig\w*|früher\w*|ursprünglich\w*|dein\w*|"
    r"ihre?\w*|system\w*|vorangegangen\w*|vorhergehend\w*)"
)
_INSTR_DE = (
    r"(?:anweisung\w*|instruktion\w*|befehl\w*|regeln?|auftr[äa]g\w*|aufgaben?|vorgaben?|"
    r"richtlinien?|prompts?|anordnung\w*|einschränkung\w*|vorschrift\w*|programmierung|"
    r"kontext|informationen|angaben|ausführungen|texte?|nachrichten)"
)

_TRIG_EN = "ignore ignoring disregard disregarding forget forgetting forgot override overriding"
_TRIG_EN += " bypass neglect abandon discard scrap dismiss set put throw pay stop do don no"
_TRIG_EN += " longer disobey nullify revoke unlearn drop"
_TRIG_DE = "ignoriere ignorieren ignoriert ignoriert vergiss vergesst vergessen vergiß vergesse"
_TRIG_DE += " missachte missachten übergehe übergehen überspringe verwirf verwerfe lösche"
_TRIG_DE += " beachte befolge setze setz"

OVERRIDE_RULES: tuple[Rule, ...] = (
    rule(
        "override.aimed", OVERRIDE, 0.85,
        rf"\b{_VERB}\s+{_GAP}{_AIMED}\s+{_GAP}{_INSTR}\b",
        triggers=_TRIG_EN, damp=_Q, weaken=_MINE, weaken_window=0,
        requires="instructions instruction directive directives directions commands orders rules "
        "guidelines guidance prompt prompts programming training policy policies "
        "guardrails filters safeguards restrictions constraints limitations protocols "
        "principles ethics morals conditioning tasks assignments briefing context",
    ),
    rule(
        "override.aimed_weak", OVERRIDE, 0.7,
        rf"\b{_VERB}\s+(?:about\s+)?{_GAP}{_AIMED}\s+{_GAP}{_INSTR_WEAK}\b",
        triggers=_TRIG_EN, damp=_Q, weaken=_MINE, weaken_factor=0.35, weaken_window=0,
        requires="information input inputs messages message text content conversation data "
        "statements statement sentences sentence words requests request questions "
        "question answers answer task documents document articles article sources search "
        "results passages snippets thoughts memory memories knowledge",
    ),
    rule(
        "override.plain", OVERRIDE, 0.45,
        rf"\b{_VERB}\s+(?:the\s+|these\s+|those\s+|my\s+)?{_GAP}{_INSTR}\b",
        triggers=_TRIG_EN, damp=_Q,
        requires="instructions instruction directive directives directions commands orders rules "
        "guidelines guidance prompt prompts programming training policy policies "
        "guardrails filters safeguards restrictions constraints limitations protocols "
        "principles ethics morals conditioning tasks assignments briefing context",
    ),
    rule(
        "override.regardless", OVERRIDE, 0.6,
        rf"\b(?:regardless|irrespective|independent(?:ly)?)\s+of\s+(?:all\s+|any\s+)?(?:the\s+|your\s+)?"
        rf"(?:previous|prior|above|earlier|preceding|initial|original|system|any|all|your|other)?"
        rf"\s*{_INSTR}\b|\binstead\s+of\s+(?:following\s+|obeying\s+)?(?:your|the|any|all)\s+"
        rf"(?:previous\s+|prior\s+|original\s+|system\s+)?{_INSTR}\b"
        rf"|\b(?:unabhängig\s+von|abweichend\s+(?:von|zu)|entgegen)\s+(?:den\s+|deinen\s+|allen\s+)?"
        rf"(?:vorherigen\s+|bisherigen\s+|obigen\s+)?{_INSTR_DE}",
        triggers="regardless irrespective independent independently instead unabhängig"
        " abweichend entgegen",
    ),
    rule(
        "override.leave_behind", OVERRIDE, 0.75,
        rf"\b(?:leave|put|set)\s+{_GAP}{_AIMED}\s+{_GAP}(?:{_INSTR}|{_INSTR_WEAK})\s+behind\b"
        rf"|\b(?:remove|delete|erase|wipe|clear)\s+{_GAP}{_AIMED}\s+{_GAP}(?:{_INSTR}|{_INSTR_WEAK})"
        rf"\s+(?:out\s+of|from)\s+your\s+(?:head|mind|memory|context)\b"
        rf"|\b(?:lass|lasse|lassen\s+sie)\s+(?:[\w-]+\s+){{0,3}}?{_AIMED_DE}\s+(?:[\w-]+\s+){{0,2}}?"
        rf"{_INSTR_DE}\s+hinter\s+(?:dir|sich|euch)\b",
        triggers="leave put set remove delete erase wipe clear lass lasse lassen",
    ),
    rule(
        "override.everything_then", OVERRIDE, 0.7,
        rf"\b(?:ignor(?:e|ing)|disregard|forget)\s+{_EVERYTHING}\s*(?:[,.;:!-]+|\band\b)\s*"
        rf"(?:now\s+|instead\s+|just\s+|then\s+|please\s+|only\s+)?(?:say|write|print|output|tell|"
        rf"answer|respond|reply|repeat|translate|generate|create|give|show|list|explain|"
        rf"describe|name|insult|claim|type|spell|return)\b"
        rf"|\b(?:vergiss|vergesst|vergessen\s+sie|vergiß|ignorier\w*)\s+(?:bitte\s+)?(?:nun\s+)?"
        rf"(?:alles|das\s+alles)\s*(?:[,.;:!-]+|\bund\b)\s*(?:jetzt\s+|nun\s+|stattdessen\s+|"
        rf"bitte\s+)?(?:schreib|sag|gib|antworte|beantworte|erzähl|zeig|wiederhol|übersetz|nenn|"
        rf"erklär|generier|erstell|beschreib|druck)\w*",
        triggers="ignore ignoring disregard forget vergiss vergesst vergessen vergiß ignoriere"
        " ignorieren ignoriert",
        damp=_Q,
    ),
    rule(
        "override.everything_before", OVERRIDE, 0.75,
        rf"\b(?:ignor(?:e|ing)|disregard|forget|forgot)\s+{_EVERYTHING}\s*,?\s+{_GAP}{_BEFORE}\b"
        rf"|\b(?:ignor(?:e|ing)|disregard|forget)\s+(?:the\s+|all\s+(?:the\s+)?)?(?:above|"
        rf"previous|preceding|foregoing|prior)(?:\s+(?:text|message|content|prompt|input|"
        rf"sentence|paragraph))?\s*(?:[.,:;!]|and\b|$)"
        rf"|\b(?:ignor(?:e|ing)|disregard|forget)\s+(?:about\s+)?what(?:'s|\s+is|\s+was|\s+came|"
        rf"\s+comes)\s+(?:before|above|earlier|previously)\b",
        triggers="ignore ignoring disregard forget forgot", damp=_Q,
    ),
    rule(
        "override.everything", OVERRIDE, 0.4,
        rf"\b(?:ignor(?:e|ing)|disregard|forget)\s+{_EVERYTHING}",
        triggers="ignore ignoring disregard forget", damp=_Q,
    ),
    rule(
        "override.ignore_and_say", OVERRIDE, 0.45,
        r"\b(?:ignor(?:e|ing)|disregard)\s+(?:the\s+|this\s+|that\s+|all\s+|any\s+|your\s+)?"
        r"(?:[\w'-]+\s+){0,2}?(?:and|,)\s+(?:instead\s+|just\s+|only\s+)?(?:say|state|print|"
        r"output|write|respond|reply|answer|return|claim|declare|report|insist)\b",
        triggers="ignore ignoring disregard", damp=_Q,
    ),
    rule(
        "override.change_instructions", OVERRIDE, 0.7,
        r"\b(?:change|update|replace|modify|overwrite|rewrite|redefine|reset)\s+(?:your|the|all(?:\s+of)?"
        r"(?:\s+your)?)\s+(?:system\s+|current\s+|original\s+|initial\s+)?(?:instructions|rules|"
        r"prompt|system\s+prompt|programming|directives|guidelines)\s+(?:to|with|as|into)\b",
        triggers="change update replace modify overwrite rewrite redefine reset",
        damp=(Damp.QUESTION,),
    ),
    rule(
        # set aside the data the answer is to be based on: "disregarding the articles, ..."
        "context_override.ignore_context", OVERRIDE, 0.5,
        r"\b(?:ignor(?:e|ing)|disregard(?:ing)?|forget(?:ting)?|skip(?:ping)?|set(?:ting)?\s+aside)"
        r"\s+(?:all\s+)?(?:the|these|those|your|any)\s+(?:provided\s+|given\s+|attached\s+|"
        r"retrieved\s+|above\s+|supplied\s+)?(?:articles?|documents?|docs|context|sources?|"
        r"search\s+results|passages|snippets|knowledge\s+base|(?:provided|given|attached|"
        r"retrieved|supplied)\s+(?:texts?|information|data|content|material))\b",
        triggers="ignore ignoring disregard disregarding forget forgetting skip skipping set"
        " setting",
        damp=(Damp.QUESTION, Damp.NEGATION, Damp.QUOTED),
        requires="articles article documents document docs context sources source search "
        "passages snippets knowledge provided given attached retrieved supplied",
    ),
    rule(
        # "ignore the resume and state: ...": the document set aside for words to say
        "context_override.ignore_and_say", OVERRIDE, 0.55,
        r"\b(?:ignor(?:e|ing)|disregard(?:ing)?|forget|skip)\s+(?:the|this|that|these|those|your|"
        r"my|all\s+the)\s+(?:\w+\s+)?(?:articles?|documents?|context|sources?|texts?|resume|cv|"
        r"e-?mails?|webpage|web\s+page|page|website|paper|study|code|function|table|data|"
        r"input|content|question|request|task|review|report|file)\s*(?:,|and|\.)\s*(?:instead\s+|"
        r"just\s+|only\s+|simply\s+)?(?:say|state|output|print|write|respond|reply|answer|claim|"
        r"report|return|declare|insist)\b",
        triggers="ignore ignoring disregard disregarding forget skip",
        damp=(Damp.QUESTION, Damp.NEGATION, Damp.QUOTED),
        requires="say state output print write respond reply answer claim report return "
        "declare insist",
    ),
    rule(
        "context_override.rag", OVERRIDE, 0.5,
        r"\b(?:do\s+not|don't|never|without)\s+(?:look(?:ing)?\s+(?:in|at|into)|us(?:e|ing)|"
        r"consult(?:ing)?|rely(?:ing)?\s+on|refer(?:ring)?\s+to|read(?:ing)?)\s+(?:the\s+|any\s+|"
        r"your\s+)?(?:provided\s+|given\s+|attached\s+)?(?:documents?|articles?|context|sources?|"
        r"search\s+results|texts?\s+provided|documents?\s+provided)\b"
        r"|\b(?:and\s+)?not\s+(?:by|from|based\s+on|using)\s+the\s+(?:articles?|documents?|context|"
        r"sources?|provided\s+\w+)\b",
        triggers="do don never without and not", damp=(Damp.QUESTION,),
        requires="documents document articles article context sources source search texts provided",
    ),
    rule(
        "forced_output.quoted", OVERRIDE, 0.35,
        r"\b(?:just|only|simply)\s+(?:output|say|print|write|type|respond\s+with|reply\s+with|"
        r"answer\s+with|return)\s*:?\s*[\"']"
        r"|\b(?:do\s+not|don't)\s+answer\s+(?:this|the|my)\s+question\s*,?\s+(?:but|and|instead)\b",
        triggers="just only simply do don",
        requires="output say print write type respond reply answer return",
    ),
    rule(
        "forced_output.every", OVERRIDE, 0.45,
        r"\b(?:answer|respond\s+to|reply\s+to)\s+(?:every|all|each|any)\s+(?:of\s+my\s+)?"
        r"(?:questions?|prompts?|messages?|requests?|inputs?)\s+(?:with|by\s+saying|only\s+with)\b"
        r"|\bevery\s+time\s+(?:you\s+(?:get|receive|see)|i\s+(?:ask|say|send))\s+(?:a\s+|an\s+|any\s+)?"
        r"(?:\w+\s+)?,?\s*(?:answer|respond|reply|say)\s+(?:with|only)\b",
        triggers="answer respond reply every",
    ),
    rule(
        "restriction_ack.but", OVERRIDE, 0.3,
        r"\b(?:i\s+know|i\s+understand|i\s+realize|i\s+realise|i'm\s+aware|i\s+am\s+aware)\s+(?:that\s+)?"
        r"(?:you\s+(?:can't|cannot|shouldn't|should\s+not|must\s+not|are\s+not\s+allowed|"
        r"aren't\s+allowed)|your\s+(?:rules|instructions|guidelines|policy)\s+(?:say|forbid|prevent|"
        r"don't))[^.\n]{0,80}?\bbut\b",
        triggers="i", requires="know understand realize realise aware",
    ),
    rule(
        # the restriction is named as an instruction the model was given, then set aside
        "restriction_ack.told", OVERRIDE, 0.5,
        r"\b(?:i\s+know|i\s+understand|i\s+realize|i\s+realise|i'm\s+aware|i\s+am\s+aware)\s+(?:that\s+)?"
        r"you\s+(?:said\s+(?:not\s+to|you\s+(?:can't|won't|shouldn't|mustn't))|were\s+"
        r"(?:told|instructed|programmed|asked)\s+not\s+to|are\s+not\s+supposed\s+to|"
        r"aren't\s+supposed\s+to)[^.\n]{0,80}?\bbut\b",
        triggers="i", requires="know understand realize realise aware",
    ),
    rule(
        "override.multilingual_everything", OVERRIDE, 0.7,
        r"\b(?:olvida\w*|olvide\w*|olvid[ae]r|ignora\w*|oublie[zr]?|dimentica\w*|esqueç\w*|esquec\w*|"
        r"vergeet)\s+(?:\w+\s+)?(?:todo|tout|tutto|tudo|alles)\s+(?:lo\s+)?(?:que|ce\s+que|quello\s+che|"
        r"o\s+que|wat)?\s*(?:\w+\s+){0,3}?(?:antes|anterior\w*|previ[oa]s?|avant|précédent\w*|"
        r"prima|dije|digo|dit|detto|disse|dicho|eerder|hiervoor)\b",
        triggers="olvida olvide olvidar olvider olvidate ignora oublie oubliez oublier dimentica"
        " esqueça esqueca vergeet",
        damp=_Q,
    ),
    rule(
        "override.de_aimed", OVERRIDE, 0.85,
        rf"\b{_VERB_DE}\s+(?:[\w-]+\s+){{0,3}}?{_AIMED_DE}\s+(?:[\w-]+\s+){{0,2}}?{_INSTR_DE}\b"
        rf"|\b{_VERB_DE}\s+(?:die|den|deine?n?)\s+{_INSTR_DE}\s+(?:von\s+)?(?:oben|davor|zuvor|"
        rf"vorher|bisher)\b",
        triggers=_TRIG_DE, damp=_Q, weaken=_MINE, weaken_window=0,
    ),
    rule(
        "override.de_object_first", OVERRIDE, 0.8,
        r"\b(?:die\s+|alle\s+|sämtliche\s+|deine\s+|ihre\s+)?(?:obigen|vorherigen|bisherigen|"
        r"vorigen|vorangegangenen|früheren|vorhergehenden|ursprünglichen)\s+(?:[\w-]+\s+)?"
        r"(?:ausführungen|anweisungen|instruktionen|angaben|informationen|befehle|regeln|"
        r"aufträge|aufgaben|texte|vorgaben|nachrichten|richtlinien)\s+(?:bitte\s+)?(?:einfach\s+)?"
        r"(?:aus\s+dem\s+(?:kopf|gedächtnis|speicher)\s+)?(?:zu\s+)?(?:ignorieren|vergessen|"
        r"missachten|übergehen|verwerfen|streichen|löschen|außer\s+acht\s+lassen|"
        r"hinter\s+sich\s+lassen)\b",
        triggers="die alle sämtliche deine ihre obigen vorherigen bisherigen vorigen"
        " vorangegangenen früheren vorhergehenden ursprünglichen",
        damp=_Q,
    ),
    rule(
        "override.declared_void", OVERRIDE, 0.7,
        r"\b(?:all\s+)?(?:the\s+|your\s+)?(?:previous|prior|above|earlier|preceding|original|old)\s+"
        r"(?:instructions?|information|rules|directives|guidelines|prompts?|tasks?|messages?)\s+"
        r"(?:(?:that\s+)?you\s+(?:have\s+)?(?:received|got|were\s+given)\s+)?(?:is|are|were)\s+(?:now\s+)?"
        r"(?:no\s+longer\s+(?:valid|relevant|in\s+effect|applicable)|irrelevant|void|null|invalid|"
        r"cancel+ed|obsolete|outdated|revoked|wrong|fake|a\s+test|not\s+(?:important|relevant|valid|"
        r"real|great))"
        r"|\b(?:alle\s+)?(?:die\s+)?(?:vorherigen|bisherigen|obigen|vorigen|früheren|ursprünglichen)\s+"
        r"(?:anweisungen|informationen|instruktionen|regeln|aufgaben|angaben|vorgaben)\s*,?\s+"
        r"(?:die\s+(?:sie|du)\s+(?:\w+\s+){0,2}?(?:erhalten|bekommen)\s+(?:haben|hast)\s*,?\s+)?"
        r"(?:sind|waren)\s+(?:jetzt\s+|nun\s+|ab\s+sofort\s+)?(?:nicht\s+(?:mehr\s+)?(?:gültig|"
        r"relevant|wichtig|ganz\s+\w+)|irrelevant|ungültig|hinfällig|aufgehoben|falsch|"
        r"veraltet|egal)",
        triggers="all the your previous prior above earlier preceding original old alle die"
        " vorherigen bisherigen obigen vorigen früheren ursprünglichen",
        requires="is are were sind waren",
    ),
    rule(
        "override.de_plain", OVERRIDE, 0.45,
        rf"\b{_VERB_DE}\s+(?:die\s+|den\s+|das\s+)?(?:[\w-]+\s+){{0,2}}?{_INSTR_DE}\b",
        triggers=_TRIG_DE, damp=_Q,
    ),
    rule(
        "override.de_everything", OVERRIDE, 0.75,
        r"\b(?:vergiss|vergesst|vergessen\s+sie|vergiß|ignorier\w*)\s+(?:[\w-]+\s+){0,2}?"
        r"(?:alles|das\s+alles|all\s+das)\s*,?\s*(?:davor|zuvor|vorher|bisher|bis\s+jetzt|oben|"
        r"(?:was|worüber)\s+(?:[\w-]+\s+){0,4}?(?:gesagt|besprochen|geschrieben|gesagt\s+wurde|"
        r"erzählt|gelernt))"
        r"|\b(?:vergiss|vergesst|vergessen\s+sie|vergiß|ignorier\w*|hör\w*\s+nicht\s+auf)\s+"
        r"(?:[\w-]+\s+){0,2}?(?:alles\s+)?(?:zuvor\s+|vorher\s+|bisher\s+|oben\s+)?"
        r"(?:gesagte\w*|geschriebene\w*|erwähnte\w*)\b",
        triggers="vergiss vergesst vergessen vergiß ignoriere ignorieren ignoriert höre hör",
        damp=_Q,
    ),
    rule(
        "override.de_everything_plain", OVERRIDE, 0.4,
        r"\b(?:vergiss|vergesst|vergessen\s+sie|vergiß|ignorier\w*)\s+(?:bitte\s+)?(?:alles|"
        r"das\s+alles)\b",
        triggers="vergiss vergesst vergessen vergiß ignoriere ignorieren", damp=_Q,
    ),
    # French, Spanish, Italian, Portuguese, Dutch, Croatian/Serbian, Polish, Turkish,
    # Indonesian, Russian, Greek (word-initial: anchored)
    rule(
        "override.multilingual", OVERRIDE, 0.85,
        r"\b(?:ignore[zr]?|oublie[zr]?|néglige[zr]?)\s+(?:toutes?\s+|tous\s+)?(?:les\s+|tes\s+|vos\s+)?"
        r"(?:\w+\s+)?(?:instructions|consignes|règles|directives|ordres)\b"
        r"|\b(?:ignora\w*|ignore|olvida\w*|olvide\w*|descarta\w*|omite\w*|desobedece\w*|"
        r"dimentica\w*|trascura\w*|esqueç\w*|esquec\w*|desconsider\w*)\s+(?:todas?\s+|tutte\s+)?"
        r"(?:las\s+|tus\s+|sus\s+|los\s+|as\s+|le\s+|suas\s+)?(?:\w+\s+)?(?:instrucciones|"
        r"indicaciones|reglas|directrices|órdenes|instruções|instrucoes|regras|diretrizes|"
        r"istruzioni|regole|indicazioni|direttive)\b"
        r"|\b(?:negeer|vergeet)\s+(?:alle\s+)?(?:de\s+|je\s+|jouw\s+)?(?:vorige\s+|eerdere\s+)?"
        r"(?:instructies|regels|opdrachten)\b"
        r"|\b(?:zaboravi|ignoriraj|ignoriši|zignoruj|zapomnij)\s+(?:sve\s+|wszystkie\s+)?"
        r"(?:prethodne\s+|poprzednie\s+)?(?:instrukcije|upute|uputstva|naredbe|pravila|"
        r"instrukcje|polecenia|zasady)\b"
        r"|\b(?:önceki|tüm)\s+(?:tüm\s+)?(?:talimatları|komutları|kuralları)\s+(?:yok\s+say|"
        r"görmezden\s+gel|unut)"
        r"|\b(?:abaikan|lupakan)\s+(?:semua\s+)?(?:instruksi|perintah|aturan)\b"
        r"|\b(?:игнорир\w*|забудь\w*|проигнорир\w*|забыть)\s+(?:все\s+)?(?:предыдущие\s+|прошлые\s+)?"
        r"(?:инструкци\w*|указани\w*|правил\w*|команд\w*)"
        r"|\b(?:αγνόησε|αγνοήστε|αγνόησέ|ξέχασε|ξεχάστε)\s+(?:όλες\s+)?(?:τις\s+)?"
        r"(?:προηγούμενες\s+)?(?:οδηγίες|εντολές|κανόνες)",
        triggers="ignore ignorez ignorer oublie oubliez oublier néglige négligez ignora ignorar"
        " ignorate olvida olvide olvidá descarta omite desobedece dimentica dimenticate"
        " trascura esqueça esqueca esqueci desconsidere desconsidera negeer vergeet zaboravi"
        " ignoriraj ignoriši zignoruj zapomnij önceki tüm abaikan lupakan игнорируй"
        " игнорировать забудь забыть проигнорируй αγνόησε αγνοήστε αγνόησέ ξέχασε ξεχάστε",
        damp=_Q,
    ),
    # Chinese, Japanese, Korean, Hindi, Arabic (no word boundaries to anchor on)
    rule(
        "override.multilingual_script", OVERRIDE, 0.85,
        r"(?:忽略|无视|忘记|忘掉|無視|忽視)(?:之前|以上|上面|前面|所有|先前|以前)?(?:的|所有的)?(?:所有)?"
        r"(?:指令|指示|说明|規則|规则|提示|命令)"
        r"|(?:以前|前|上記|これまで)の(?:すべての)?(?:指示|命令|指令)を(?:無視|忘れ)"
        r"|(?:이전|모든|위의)\s*(?:의\s*)?(?:모든\s*)?(?:지시(?:사항)?|명령|지침)(?:을|를)?\s*(?:무시|잊어)"
        r"|(?:पिछले|पूर्व|सभी)\s+(?:सभी\s+)?निर्देशों\s+(?:को\s+)?(?:की\s+)?(?:अनदेखी|अनदेखा|"
        r"नज़रअंदाज़|नजरअंदाज|भूल)"
        r"|(?:تجاهل|انسَ|انس)\s+(?:جميع\s+|كل\s+)?(?:التعليمات|الأوامر|التوجيهات)",
        substrings=("忽略", "无视", "忘记", "忘掉", "無視", "忽視", "忘れ", "무시", "잊어", "निर्देश",
                    "تجاهل", "انس"),
        damp=_Q, anchor=Anchor.SCAN,
    ),
    # --- task switch: "your new task is", "from now on you ..."
    rule(
        "task_switch.new_instructions", OVERRIDE, 0.45,
        r"\b(?:new|updated|real|actual|true|revised|secret|hidden|override|additional|"
        r"overriding|priority)\s+(?:instructions?|tasks?|directives?|rules|orders|commands|"
        r"assignments?|objectives?|mission|system\s+prompt|prompt)\s*(?:[:!-]|follows?|are\b|is\b)"
        r"|\byour\s+(?:new|real|actual|true|next|only|sole)\s+(?:task|job|role|goal|objective|"
        r"mission|instructions?|purpose|assignment)\s+(?:is|are|will\s+be|:)"
        r"|\byour\s+(?:instructions|task|rules|prompt|orders|job)\s+(?:is|are)\s+now\b"
        r"|\b(?:now\s+)?(?:focus|concentrate)\s+on\s+(?:your\s+|the\s+|a\s+)?new\s+task\b",
        triggers="new updated real actual true revised secret hidden override additional"
        " overriding priority your focus concentrate now",
        requires="instructions instruction tasks task directive directives rules orders commands "
        "assignment assignments objective objectives mission system prompt job role goal "
        "purpose",
    ),
    rule(
        "task_switch.another", OVERRIDE, 0.35,
        r"\b(?:now|next|here)\s*,?\s+(?:[\w'-]+\s+){0,3}?(?:new|further|another|additional|"
        r"the\s+next|the\s+following|a\s+different)\s+(?:tasks?|assignments?|challenges?|"
        r"instructions?|orders|missions?)\b"
        r"|\b(?:nun|jetzt|hier)\s*,?\s+(?:[\w-]+\s+){0,4}?(?:neue|weitere|nächste|eine\s+andere)\s+"
        r"(?:aufgaben?|anweisungen?|herausforderung\w*|aufträge?)\b"
        r"|\b(?:we\s+)?(?:start|begin)\s+(?:over|again|from\s+(?:scratch|the\s+(?:front|beginning)))"
        r"\s+(?:\w+\s+){0,2}?with\s+a\s+new\b"
        r"|\b(?:wir\s+)?(?:starten|beginnen|fangen)\s+(?:[\w-]+\s+){0,3}?(?:neu|von\s+vorne?)\b",
        triggers="now next here nun jetzt hier we start begin wir starten beginnen fangen",
        requires="tasks task assignment assignments challenge challenges instructions instruction "
        "orders mission missions aufgabe aufgaben anweisung anweisungen herausforderung "
        "aufträge auftrag new neu vorne",
    ),
    rule(
        "task_switch.closure", OVERRIDE, 0.2,
        r"\b(?:that\s+is|that's|this\s+is)\s+(?:done|enough|sufficient|over|finished|complete)\b"
        r"|\b(?:you\s+have|you've)\s+(?:passed|completed|finished|outdone|mastered)\b"
        r"|\b(?:the\s+)?first\s+(?:test|task|part|step|round)\s+(?:is\s+)?(?:done|over|complete|"
        r"completed|finished|passed)\b|\b(?:well|very\s+well|excellently)\s+done\b"
        r"|\b(?:das|dies)\s+(?:ist|war)\s+(?:erledigt|genug|geschafft)\b|\b(?:sehr\s+)?gut\s+gemacht\b"
        r"|\b(?:du\s+hast|sie\s+haben)\s+(?:den\s+ersten\s+test\s+)?(?:bestanden|geschafft)\b",
        triggers="that that's this you you've the first well very excellently das dies sehr"
        " gut du sie",
        requires="done enough sufficient over finished complete passed completed outdone mastered "
        "first erledigt genug geschafft gemacht bestanden",
    ),
    rule(
        "task_switch.from_now_on", OVERRIDE, 0.35,
        r"\b(?:from\s+now\s+on|from\s+this\s+(?:point|moment)\s+(?:on|forward)|henceforth|"
        r"starting\s+(?:now|immediately)|for\s+the\s+rest\s+of\s+(?:this|our|the)\s+conversation)"
        r"\s*,?\s*(?:you|your|always|only|never|respond|answer|reply|act|behave|speak|pretend|"
        r"ignore|do\s+not|don't)\b",
        triggers="from henceforth starting for",
        requires="now point moment henceforth immediately rest",
    ),
    rule(
        "task_switch.de", OVERRIDE, 0.45,
        r"\b(?:neue|nächste|deine\s+neue|eine\s+neue|die\s+neue)\s+(?:aufgabe|anweisung\w*|"
        r"regel\w*|rolle|instruktion\w*)\s*(?:[:!-]|lautet|ist|sind)"
        r"|\bkonzentriere\s+dich\s+(?:\w+\s+){0,2}?auf\s+(?:\w+\s+){0,2}?neue\b"
        r"|\bab\s+(?:jetzt|sofort|nun|heute)\s+(?:bist|wirst|sollst|musst|antwortest|sprichst|"
        r"verhältst|ignorierst)\s+du\b"
        r"|\b(?:jetzt|nun)\s+(?:kommen|folgen)\s+(?:\w+\s+){0,3}?(?:neue\s+|weitere\s+)?"
        r"(?:aufgaben|anweisungen)\b",
        triggers="neue nächste deine eine die konzentriere ab jetzt nun",
        requires="aufgabe anweisung anweisungen regel regeln rolle instruktion neue bist wirst "
        "sollst musst antwortest sprichst verhältst ignorierst aufgaben",
    ),
    # --- role / persona switch
    rule(
        "persona_switch.now", ROLE, 0.45,
        r"\b(?:you\s+are|you're|u\s+r)\s+(?:now|no\s+longer|not\s+(?:an?\s+)?(?:ai|assistant|"
        r"chatbot|language\s+model|model)|from\s+now\s+on|going\s+to\s+(?:be|act|pretend|play))\b"
        r"(?!\s+(?:ready|able|done|set|logged|connected|subscribed|registered|signed|free|in\s+the|"
        r"on\s+the|at\s+the|back|here|there)\b)"
        r"|\bnow\s+you\s+are\b(?!\s+(?:ready|able|done|set|logged|connected|free|talking)\b)"
        r"|\bnow\s+you\s+(?:act|will\s+act|play|behave|become|pretend)\b"
        r"|\byou\s+are\s+(?:not|no)\s+(?:longer\s+)?(?:an?\s+|the\s+)?[\w-]+(?:\s+[\w-]+)?\s+"
        r"(?:anymore|any\s+more|but\s+(?:an?|the)\b)"
        r"|\byou\s+will\s+(?:now\s+)?(?:act|play|pretend|roleplay|simulate|impersonate)\b",
        triggers="you you're u now",
        requires="now longer not no going from",
    ),
    rule(
        "persona_switch.pretend", ROLE, 0.3,
        r"\bpretend\s+(?:to\s+be|you\s+are|you're|that\s+you|you\s+have|to\s+have|you\s+can|"
        r"you\s+could|you\s+know)\b"
        r"|\b(?:assume|take\s+on|adopt|play|embody)\s+(?:the\s+)?(?:role|persona|identity|"
        r"character)\s+of\b|\bimpersonat\w*\b",
        triggers="pretend assume take adopt play embody impersonate impersonating",
        damp=(Damp.QUESTION,),
    ),
    rule(
        "persona_switch.act_as", ROLE, 0.2,
        r"\b(?:act|behave|respond|answer|reply|talk|speak)\s+(?:like|as)\s+(?:if\s+you\s+(?:were|"
        r"are)|though\s+you|an?\s+|the\s+|my\s+)|\brole-?\s?play(?:ing)?\b"
        r"|\bimagine\s+(?:that\s+)?you\s+(?:are|were)\b",
        triggers="act behave respond answer reply talk speak roleplay role imagine",
        requires="like as roleplay role play imagine",
    ),
    rule(
        "persona_switch.de", ROLE, 0.45,
        r"\bdu\s+bist\s+(?:jetzt|nun|ab\s+(?:jetzt|sofort)|ab\s+heute|nicht\s+mehr|kein\w*\s+"
        r"(?:ki|assistent|chatbot|sprachmodell))\b|\b(?:jetzt|nun|ab\s+(?:jetzt|sofort))\s+bist\s+du\b"
        r"|\bdu\s+bist\s+kein\w*\s+[\w-]+\s+(?:mehr|sondern)\b",
        triggers="du jetzt nun ab",
        requires="bist",
    ),
    rule(
        "persona_switch.de_pretend", ROLE, 0.3,
        r"\btu\s+so,?\s+als\b|\bstell\s+dir\s+vor,?\s+du\s+(?:bist|wärst|wärest)\b"
        r"|\b(?:spiel|spiele|übernimm|übernehme)\s+(?:\w+\s+){0,2}?rolle\b"
        r"|\bverhalte\s+dich\s+(?:wie|als)\b|\bantworte\s+(?:ab\s+jetzt\s+|nur\s+noch\s+)?als\b",
        triggers="tu stell spiel spiele übernimm übernehme verhalte antworte",
    ),
    rule(
        "persona_switch.de_act_as", ROLE, 0.2,
        r"\b(?:als|wie)\s+(?:ein\w*\s+)?[\w-]+\s+(?:zu\s+)?(?:fungieren|fungierst|agieren|agierst|"
        r"auftreten|auftrittst|handeln)\b",
        triggers="als wie",
        requires="fungieren fungierst agieren agierst auftreten auftrittst handeln",
    ),
    # --- role tags and fake turns inside user content
    rule(
        "role_tag.line", ROLE, 0.6,
        r"[ \t]*(?:#{1,4}[ \t]*|\[|<|\*\*|\{)?[ \t]*(?:system|sys|system[ \t]+(?:prompt|"
        r"message|note|override|instructions?|update|alert)|developer|admin(?:istrator)?|root|"
        r"operator)[ \t]*(?:\]|>|\*\*|\})?[ \t]*:[ \t]*(?=[^\n]{0,80}\b(?:you|your|ignore|must|"
        r"always|never|new|now|respond|answer|reply|reveal|instructions?|assistant|ai|du|dein\w*|"
        r"ignoriere|override|disregard|forget|print|output)\b)",
        triggers="system sys developer admin administrator root operator",
        damp=(Damp.CODE,),
        anchor=Anchor.LINE,
    ),
    rule(
        "role_tag.xml", ROLE, 0.55,
        r"<\s*/?\s*(?:system|sys|system[_-]?prompt|system[_-]?message|admin|developer)\s*>"
        r"|\[\s*/?\s*(?:system|admin|developer)(?:\s+(?:message|note|prompt))?\s*\]"
        r"|\"role\"\s*:\s*\"(?:system|developer)\"",
        triggers="system sys system_prompt admin developer role",
        damp=(Damp.CODE, Damp.META),
        anchor=Anchor.SCAN,
    ),
    rule(
        "role_tag.fake_turn", ROLE, 0.35,
        r"[ \t]*(?:assistant|ai|chatgpt|gpt|bot|model)[ \t]*:[ \t]*\S[^\n]*\n(?:[^\n]*\n)"
        r"{0,6}?[ \t]*(?:user|human|me)[ \t]*:",
        triggers="assistant ai chatgpt gpt bot model",
        damp=(Damp.CODE,),
        anchor=Anchor.LINE,
    ),
    # --- chat-template tokens and instruction-format headers
    rule(
        "template.special_token", DELIMITER, 0.85,
        r"<\|(?:im_start|im_end|im_sep|system|user|assistant|endoftext|eot_id|start_header_id|"
        r"end_header_id|begin_of_text|end_of_text|channel|message|end|prompt|eom_id|"
        r"python_tag|fim_\w+)\|>|\[/?INST\]|<</?SYS>>|<(?:start|end)_of_turn>"
        r"|</?s>\s*\[INST\]",
        substrings=("<|", "[inst]", "[/inst]", "<<sys>>", "<</sys>>", "_of_turn>"),
        damp=(Damp.CODE, Damp.META),
        anchor=Anchor.SCAN,
    ),
    rule(
        "template.escaped_breaks", DELIMITER, 0.45,
        r"(?:\\\s?n\s*){4,}|(?:\\r\\n\s*){3,}",
        substrings=("\\n", "\\ n"), anchor=Anchor.SCAN,
    ),
    rule(
        "template.instruction_label", DELIMITER, 0.4,
        r"(?:^|\\n|\n)[ \t]*(?:new\s+|additional\s+|real\s+|secret\s+)?"
        r"(?:instructions?|order|command|"
        r"task|anweisung|befehl|aufgabe)[ \t]*:[ \t]*\S",
        substrings=("instruction:", "instructions:", "order:", "command:", "task:",
                    "anweisung:", "befehl:", "aufgabe:"),
        anchor=Anchor.SCAN, damp=(Damp.CODE,),
    ),
    rule(
        "template.end_banner", DELIMITER, 0.5,
        # A banner starts where its run of = - # * starts, and the run is taken whole
        # (possessive): a long run is then read once, not once from every position in it.
        r"(?:(?<!=)={3,}+|(?<!-)-{3,}+|(?<!#)#{3,}+|(?<!\*)\*{3,}+)[ \t]*+"
        r"(?:END|STOP|BEGIN|SYSTEM|ADMIN)\b",
        substrings=("===", "---", "###", "***"), anchor=Anchor.SCAN, flags=0,
    ),
    rule(
        "template.header", DELIMITER, 0.45,
        r"[ \t]*#{2,4}[ \t]*(?:instruction|system|response|input|new\s+instructions?)"
        r"[ \t]*:?[ \t]*(?=\n|$)|(?:\n)?(?:human|assistant)[ \t]*:[^\n]*\n(?:.*\n){0,20}?"
        r"[ \t]*(?:human|assistant)[ \t]*:",
        triggers="instruction system response input new human assistant",
        damp=(Damp.CODE,),
        anchor=Anchor.LINE,
    ),
    rule(
        "template.end_marker", DELIMITER, 0.5,
        r"[ \t]*(?:-{3,}|={3,}|\*{3,}|#{3,})?[ \t]*(?:end\s+of\s+(?:system\s+)?"
        r"(?:prompt|instructions?|context|document|input|user\s+input)|(?:system\s+)?prompt\s+"
        r"ends?\s+here|begin\s+(?:new\s+)?(?:system\s+)?instructions?)[ \t]*(?:-{3,}|={3,}|"
        r"\*{3,}|#{3,})?",
        triggers="end prompt system begin",
        damp=(Damp.CODE,),
        anchor=Anchor.LINE,
    ),
)
