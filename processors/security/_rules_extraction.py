"""Rules: prompt extraction, secret/data extraction, indirect injection, exfiltration."""

from __future__ import annotations

import re

from llmtrace_processors.security.scoring import Anchor, Damp, Rule, rule

__all__ = ["EXTRACTION_RULES", "INDIRECT", "SECRET", "EXFILTRATION", "PROMPT"]

PROMPT = "prompt_injection.prompt_extraction"
SECRET = "prompt_injection.secret_extraction"
INDIRECT = "prompt_injection.indirect"
EXFILTRATION = "prompt_injection.exfiltration"

_Q = (Damp.QUESTION, Damp.NEGATION)
_ASK = (
    r"(?:(?:reveal|show|print|display|output|repeat|recite|echo|dump|leak|disclose|expose|"
    r"share|give|tell|write|list|provide|spell|paste|copy|return|send|state|type|quote|"
    r"render|divulge|confirm|remind)(?:s|ed|ing|ning)?|let\s+me\s+(?:know|have|see)|"
    r"what(?:'s|\s+is|\s+are|\s+was|\s+were)|what\s+does|can\s+i\s+(?:have|get|see)|"
    r"(?:may|could)\s+i\s+(?:have|get|see))"
)
_TRIG_ASK = (
    "reveal show print display output repeat recite echo dump leak disclose expose share give"
    " tell write list provide spell paste copy return send state type quote render divulge"
    " confirm remind let what can may could"
)
_W = r"(?:[\w'-]+\s+)"
_HIDDEN_ADJ = (
    r"(?:system|initial|original|hidden|secret|internal|developer|confidential|pre-?|"
    r"underlying|private|backend|base|meta|custom|starting|opening)"
)
_EXACT_ADJ = (
    r"(?:full|complete|exact|entire|verbatim|first|preceding|previous|above|real|actual|raw|"
    r"whole|current|given)"
)
_PROMPT_OBJ = (
    r"(?:prompts?|instructions?|system\s+message|directives?|configuration|config|"
    r"programming|guidelines|rules|context\s+window|initiali[sz]ation|preamble)"
)
_SECRET_OBJ = (
    r"(?:passwords?|passcodes?|pass\s?phrases?|passw[oö]rt(?:er)?|secrets?\s+(?:keys?|word|code|"
    r"phrase|number|token|value|string|password)|secret(?=\s*(?:[?.!,:;]|$|\s+(?:is|was|you|that|i|now|please)\b))|"
    r"api[\s_-]?keys?|access\s+(?:keys?|codes?|tokens?)|pin(?:\s+(?:code|number))?|"
    r"credentials?|private\s+key|auth(?:entication|orization)?\s+(?:token|code|key)|"
    r"security\s+(?:code|key|answer)|key\s?phrase|code\s?word|magic\s+word|safe\s?word|"
    r"login\s+(?:details|credentials|info)|(?:hidden|confidential)\s+(?:key|word|code|phrase|"
    r"string|value|token|information|info|data))"
)
# "the password policy", "password manager": about passwords, not asking for one
_NOT_SECRET = (
    r"(?!\s+(?:requirements?|polic(?:y|ies)|manager|strength|rules|reset|recovery|field|hash\w*|"
    r"generator|complexity|length|format|protection|tips|change|expir\w*|of\s+(?:a|the)\s+"
    r"(?:good|strong)))"
)
_PII_OBJ = (
    r"(?:birth\s?date|date\s+of\s+birth|birth\s?day|birth\s+(?:year|month)|e-?mail(?:\s+address)?|"
    r"(?:current\s+)?(?:city|place|country)\s+of\s+residence|residence|whereabouts|"
    r"(?:current|home|exact)\s+(?:location|city)|location|"
    r"phone(?:\s+number)?|(?:home\s+)?address|social\s+security(?:\s+number)?|ssn|"
    r"credit\s+card(?:\s+number)?|passport(?:\s+number)?|salary|medical\s+\w+|initials|"
    r"full\s+name|maiden\s+name|bank\s+(?:account|details)|account\s+(?:number|balance))"
)
_AI = r"(?:ai|a\.i\.|llm|large\s+language\s+model|language\s+model|assistant|chat\s?bot|bot|agent|gpt|chatgpt|claude|copilot|gemini|model)"  # noqa: E501

EXTRACTION_RULES: tuple[Rule, ...] = (
    # --- the system prompt
    rule(
        "prompt_extraction.hidden", PROMPT, 0.8,
        rf"\b{_ASK}\b\s+{_W}{{0,4}}?(?:your|the|its|this|these|all|my)\s+{_W}{{0,2}}?"
        rf"{_HIDDEN_ADJ}[\s-]*{_W}{{0,1}}?(?:{_PROMPT_OBJ}|text|message|words)\b",
        triggers=_TRIG_ASK, damp=(Damp.META, Damp.NEGATION),
        requires="prompt prompts instructions instruction message directives directive "
        "configuration config programming guidelines rules context initialization "
        "initialisation preamble text words",
    ),
    rule(
        "prompt_extraction.exact", PROMPT, 0.7,
        rf"\b{_ASK}\b\s+(?:{_W}{{0,4}}?(?:your|the|its|all)\s+)?{_W}{{0,2}}?{_EXACT_ADJ}\s+"
        rf"{_W}{{0,1}}?(?:prompts?|instructions|system\s+message|directives|configuration)\b",
        triggers=_TRIG_ASK, damp=(Damp.META, Damp.QUESTION, Damp.NEGATION),
        requires="prompt prompts instructions message directives configuration",
    ),
    rule(
        "prompt_extraction.yours", PROMPT, 0.6,
        rf"\b{_ASK}\b\s+(?:me\s+)?{_W}{{0,3}}?(?:your|ur)\s+{_W}{{0,2}}?(?:prompts?|"
        rf"instructions|prompt\s+texts?|programming|initial\s+\w+|directives|system\s+\w+|"
        rf"database|knowledge\s+base|memory|training\s+data|embeddings)\b",
        triggers=_TRIG_ASK, damp=(Damp.META, Damp.NEGATION),
        requires="your ur",
    ),
    rule(
        "prompt_extraction.yours_rules", PROMPT, 0.4,
        rf"\b{_ASK}\b\s+(?:me\s+)?{_W}{{0,3}}?(?:your|ur)\s+(?:\w+\s+)?(?:rules|guidelines|"
        rf"constraints|restrictions|limitations|training\s+data)\b",
        triggers=_TRIG_ASK, damp=(Damp.META, Damp.NEGATION),
        requires="your ur",
    ),
    rule(
        "prompt_extraction.text_above", PROMPT, 0.65,
        r"\b(?:repeat|print|output|write|copy|return|show|display|echo|recite|reproduce|dump)"
        r"\s+(?:back\s+)?(?:\w+\s+){0,2}?(?:everything|all(?:\s+of)?(?:\s+the)?\s+(?:text|words|"
        r"content|messages?|instructions)|the\s+(?:text|words|content|messages?)|what(?:'s|\s+is|"
        r"\s+was)\s+written)\s+(?:\w+\s+){0,2}?(?:above|before|prior|preceding|so\s+far|"
        r"from\s+the\s+(?:beginning|start|top)|at\s+the\s+(?:beginning|start|top))\b"
        r"|\bstarting\s+(?:with|from)\s+[\"']?(?:you\s+are|your\s+(?:task|role)|system)\b"
        r"|\b(?:word\s+for\s+word|verbatim)\b[^.\n]{0,60}\b(?:above|prompt|instructions)\b"
        r"|\bwhat\s+(?:was|is|has\s+been)\s+(?:written|said|typed)\s+(?:\w+\s+){0,3}?(?:above|"
        r"before|at\s+the\s+(?:beginning|start|top))\b"
        r"|\b(?:the\s+)?(?:beginning|start)\s+of\s+(?:this|the|your)\s+(?:prompt|conversation|"
        r"instructions)\b",
        triggers="repeat print output write copy return show display echo recite reproduce"
        " dump starting word verbatim what the beginning start",
        damp=(Damp.META,),
        requires="above before prior preceding beginning start top written verbatim word far",
    ),
    rule(
        "prompt_extraction.de", PROMPT, 0.6,
        r"\b(?:zeig|zeige|gib|nenn|nenne|wiederhol|wiederhole|schreib|schreibe|sag|sage|verrat|"
        r"verrate|druck|drucke|liste|gebe)\w*\s+(?:mir\s+)?(?:[\w-]+\s+){0,3}?(?:dein\w*|die|"
        r"den|alle|ihre?\w*)\s+(?:[\w-]+\s+){0,2}?(?:system-?)?(?:prompt\w*|anweisung\w*|"
        r"instruktion\w*|vorgabe\w*|regeln|konfiguration)\b"
        r"|\bwie\s+lautet\s+(?:dein|der|ihr)\s+(?:system-?)?(?:prompt|anweisung\w*)\b"
        r"|\bwas\s+(?:sind|waren|ist|war)\s+(?:deine?|ihre?)\s+(?:ursprünglich\w*\s+)?"
        r"(?:anweisungen|instruktionen|prompt|vorgaben|system-?prompt)\b",
        triggers="zeig zeige gib nenn nenne wiederhol wiederhole schreib schreibe sag sage"
        " verrat verrate druck drucke liste gebe wie was",
        damp=(Damp.META,),
        requires="prompt prompts systemprompt anweisung anweisungen instruktion instruktionen "
        "vorgabe vorgaben regeln konfiguration system",
    ),
    # --- secrets and personal data held in the context
    rule(
        "secret_extraction.ask", SECRET, 0.5,
        rf"\b(?:{_ASK}|need|know|get|verify|input|enter)\b\s+(?:me\s+|us\s+)?{_W}{{0,4}}?(?:your|"
        rf"the|our|this|that|its|any|my)\s+{_W}{{0,2}}?{_SECRET_OBJ}\b{_NOT_SECRET}",
        triggers=_TRIG_ASK + " need know get verify input enter", damp=_Q,
        weaken=r"\b(?:my|a|an)\s+(?:\w+\s+)?(?:password|passcode|pin|credentials)",
        weaken_factor=0.3,
        requires="password passcode passphrase pass passwort secret api key access pin credentials "
        "credential private auth authentication authorization security keyphrase codeword "
        "code magic safe safeword keyword login hidden confidential",
    ),
    rule(
        "secret_extraction.yours", SECRET, 0.6,
        rf"\b(?:your|ur|our)\s+{_W}{{0,1}}?{_SECRET_OBJ}\b"
        rf"{_NOT_SECRET}(?=[^.\n]{{0,40}}\?)|\b{_ASK}\b\s+(?:me\s+)?{_W}{{0,3}}?(?:your|ur)\s+"
        rf"{_W}{{0,1}}?{_SECRET_OBJ}\b{_NOT_SECRET}",
        triggers="your ur our " + _TRIG_ASK, damp=_Q,
        requires="password passcode passphrase pass passwort secret api key access pin credentials "
        "credential private auth authentication authorization security keyphrase codeword "
        "code magic safe safeword keyword login hidden confidential",
    ),
    rule(
        "secret_extraction.multilingual", SECRET, 0.5,
        r"\b(?:cuál\s+es|dime|dame|revela\w*|comparte|confirma|dinos)\s+(?:la\s+|tu\s+|su\s+|el\s+)?"
        r"(?:contraseña|clave(?:\s+secreta)?|código\s+secreto)\b"
        r"|\b(?:quel\s+est|donne[zs]?(?:-moi)?|dis(?:-moi)?|révèle\w*|confirme\w*|partage\w*)\s+"
        r"(?:le\s+|ton\s+|votre\s+|la\s+)?(?:mot\s+de\s+passe|code\s+secret|clé\s+secrète)\b"
        r"|\b(?:qual\s+è|dimmi|dammi|rivela\w*|conferma\w*)\s+(?:la\s+|tua\s+|il\s+)?(?:password|"
        r"parola\s+d'ordine|chiave\s+segreta|codice\s+segreto)\b"
        r"|\b(?:was\s+ist|wie\s+lautet|nenne?|verrate?|gib\s+mir|sag\s+mir|zeig\s+mir)\s+(?:mir\s+)?"
        r"(?:das\s+|dein\w*\s+|den\s+|die\s+)?(?:passwort|kennwort|geheimcode|geheimwort|"
        r"geheimnis|zugangscode|api-?schlüssel)\b"
        r"|\b(?:qual\s+é|me\s+diga|diga-me|revele|confirme)\s+(?:a\s+|o\s+)?(?:sua\s+|tua\s+)?(?:senha|"
        r"palavra-passe|código\s+secreto)\b"
        r"|\b(?:mir|uns)\s+(?:ihr\w*|dein\w*|das|den|die)\s+(?:passwort|kennwort|geheimcode|geheimnis|"
        r"zugangscode|pin)\s+(?:zu\s+)?(?:geben|sagen|nennen|verraten|zeigen|mitteilen|schicken)"
        r"|\b(?:ihr\w*|dein\w*)\s+(?:passwort|kennwort|geheimcode|zugangscode)\b"
        r"|\b(?:sua|tua)\s+senha\b|\b(?:votre|ton)\s+mot\s+de\s+passe\b|\b(?:tu|su)\s+contraseña\b"
        r"|\b(?:la\s+tua|la\s+sua)\s+(?:password|parola\s+d'ordine)\b"
        r"|\b(?:wat\s+is|geef|vertel)\s+(?:me\s+)?(?:het\s+|je\s+|jouw\s+)?wachtwoord\b"
        r"|\bкакой\s+(?:у\s+тебя\s+)?пароль|\b(?:скажи|назови|покажи)\s+(?:мне\s+)?пароль",
        triggers="cuál dime dame revela revelame comparte confirma dinos quel donne donnez dis"
        " révèle confirme partage qual dimmi dammi rivela conferma was wie nenne nenn verrate"
        " verrat gib sag zeig me diga revele wat geef vertel какой скажи назови покажи mir uns"
        " ihr ihre ihren dein deine deinen sua tua votre ton tu su la",
        damp=_Q,
        requires="contraseña clave código mot code password parola chiave codice passwort kennwort "
        "geheimcode geheimwort geheimnis zugangscode api senha palavra wachtwoord пароль",
    ),
    rule(
        "secret_extraction.multilingual_script", SECRET, 0.5,
        r"密码是什么|告诉我(?:你的)?密码|(?:你的)?密码是多少|パスワードは(?:何|なに)|パスワードを教えて"
        r"|비밀번호(?:가|는|를)\s*(?:뭐|무엇|필요|알려)|パスワード(?:が|を)(?:必要|教え)"
        r"|كلمة\s+(?:المرور|السر)\s+(?:هي|ما)",
        substrings=("密码", "パスワード", "비밀번호", "كلمة"), damp=_Q, anchor=Anchor.SCAN,
    ),
    rule(
        "data_extraction.pii", SECRET, 0.3,
        rf"\b{_ASK}\b\s+(?:me\s+|us\s+)?{_W}{{0,4}}?(?:the\s+user'?s?|users'|the\s+customer'?s|"
        rf"(?:his|her|their)|[\w-]+'s)\s+{_W}{{0,2}}?{_PII_OBJ}\b",
        triggers=_TRIG_ASK, damp=_Q,
        requires="birth birthdate birthday date email mail e phone address social ssn credit "
        "passport salary medical initials full maiden bank account city place country residence "
        "whereabouts current home exact location",
    ),
    rule(
        "data_extraction.user", SECRET, 0.45,
        rf"\b(?:{_ASK}|need|know|get|find\s+out|access|see)\b\s+(?:me\s+|us\s+)?{_W}{{0,5}}?"
        rf"(?:the\s+user'?s|users'|the\s+customer'?s|other\s+users'?|(?:all|every)\s+users'?)\s+"
        rf"{_W}{{0,2}}?{_PII_OBJ}\b",
        triggers=_TRIG_ASK + " need know get find access see",
        weaken=r"\b(?:the\s+)?user'?s\s+(?:input|request|question|message|session|id|name|"
        r"agent|interface|experience|guide|manual)\b", weaken_factor=0.2,
        damp=_Q,
        requires="birth birthdate birthday date email mail e phone address social ssn credit "
        "passport salary medical initials full maiden bank account city place country residence "
        "whereabouts current home exact location",
    ),
    rule(
        # "where does Jane Smith live": the whereabouts of a named person or of the user
        "data_extraction.whereabouts", SECRET, 0.3,
        r"\bwhere\s+(?:does|did|do|is)\s+(?:the\s+user|the\s+customer|the\s+client|"
        r"(?-i:[A-Z][a-z]+(?:\s+[A-Z][a-z]+)?))\s+(?:currently\s+|now\s+|actually\s+)?"
        r"(?:live|reside|stay|work|living|residing|staying)\b",
        triggers="where", requires="live reside stay work living residing staying",
        damp=_Q,
    ),
    rule(
        "data_extraction.user_any", SECRET, 0.3,
        rf"\b(?:{_ASK}|encode|translate|spell|write|use|using)\b\s+(?:me\s+|us\s+)?{_W}{{0,5}}?"
        rf"(?:the\s+user'?s|users'|the\s+customer'?s)\s+[\w-]+",
        triggers=_TRIG_ASK + " encode translate spell write use using",
        requires="user's users' customer's user customer",
        weaken=r"\b(?:the\s+)?(?:user|customer)'?s\s+(?:input|request|question|message|session|id|"
        r"name|agent|interface|experience|guide|manual|feedback|query|prompt|text|code)\b",
        weaken_factor=0.2, damp=_Q,
    ),
    rule(
        "secret_mention.protected", SECRET, 0.25,
        rf"\b(?:the|your|our|this)\s+(?:secret\s+)?(?:password|passcode|pass\s?phrase|"
        rf"secret\s+(?:key|word|code|phrase)|api\s+key|access\s+code)\b{_NOT_SECRET}",
        triggers="the your our this",
        requires="password passcode passphrase pass secret api access",
        damp=(Damp.NEGATION,),
    ),
    # --- indirect injection: data that talks to the model
    rule(
        "indirect.addressed", INDIRECT, 0.6,
        rf"\b(?:if|when|whenever)\s+you\s+(?:are|'re|were)\s+(?:an?\s+)?{_AI}\b"
        rf"|\b(?:attention|note|message|instructions?|important|notice|reminder|hey|hello|dear|"
        rf"warning)\s*[,:!-]?\s*(?:to\s+|for\s+)?(?:the\s+|any\s+|all\s+)?{_AI}s?\b\s*[,:!-]"
        rf"|\b{_AI}s?\s+(?:reading|processing|summari[sz]ing|parsing|analy[sz]ing|browsing|"
        rf"viewing|seeing|scanning)\s+(?:this|these)\b"
        rf"|\b(?:an\s+)?instructions?\s+(?:for|to)\s+(?:the\s+)?{_AI}s?\b",
        triggers="if when whenever attention note message instruction instructions important"
        " notice reminder hey hello dear warning ai llm assistant chatbot bot agent gpt"
        " chatgpt claude copilot gemini model an",
        requires="ai a llm large language assistant chatbot chat bot agent gpt chatgpt claude "
        "copilot gemini model",
    ),
    rule(
        "concealment.user", INDIRECT, 0.4,
        r"\b(?:do\s+not|don't|never|without)\s+(?:tell(?:ing)?|inform(?:ing)?|mention(?:ing)?|"
        r"reveal(?:ing)?|notify(?:ing)?|alert(?:ing)?|let(?:ting)?|show(?:ing)?|disclos(?:e|ing)|"
        r"warn(?:ing)?)\s+(?:this\s+|it\s+|anything\s+|that\s+)?(?:to\s+)?(?:the|your)\s+"
        r"(?:user|human|customer|reader|person|recipient)\b"
        r"|\bthe\s+(?:user|human)\s+(?:must|should|will|may)\s+not\s+(?:know|see|notice|find\s+out|"
        r"be\s+(?:told|informed|aware))"
        r"|\b(?:secretly|covertly|silently|quietly|discreetly|invisibly)\s+(?:\w+\s+){0,2}?"
        r"(?:send|forward|e-?mail|post|upload|exfiltrate|include|add|insert|append|embed|call|"
        r"execute|run|transfer|delete)\b",
        triggers="do don never without the secretly covertly silently quietly discreetly"
        " invisibly",
        requires="user human customer reader person recipient secretly covertly silently quietly "
        "discreetly invisibly",
    ),
    rule(
        "hidden.comment", INDIRECT, 0.4,
        r"<!--(?:(?!-->).){0,600}?\b(?:ignore|disregard|instead|assistant|ai|you\s+must|"
        r"you\s+should|print|say|state|respond|reply|output|do\s+not|don't|system|instructions?|"
        r"prompt|forget|reveal|new\s+task)\b",
        substrings=("<!--",), flags=re.IGNORECASE | re.DOTALL,
        anchor=Anchor.SCAN,
    ),
    rule(
        "hidden.code_comment", INDIRECT, 0.3,
        r"(?m)(?:^|\s)(?:#|//|/\*)[ \t]*(?:[^\n]{0,60}?\b)?(?:ignore|disregard)\s+"
        r"(?:the\s+|this\s+|"
        r"all\s+)?(?:\w+\s+)?(?:and|,)\s+(?:\w+\s+){0,3}?(?:say|state|print|output|return|claim|"
        r"respond)\b",
        substrings=("#", "//", "/*"),
        anchor=Anchor.SCAN,
        requires="ignore disregard",
    ),
    # --- exfiltration
    rule(
        "hidden.code_comment_you", INDIRECT, 0.35,
        r"(?m)(?:^|\s)(?:#|//|/\*)[ \t]*[^\n]{0,80}?\b(?:you\s+(?:must|should|need\s+to|have\s+to|"
        r"will)|i\s+(?:suggest|recommend|urge|advise)\s+you|(?:please\s+)?(?:consider|state|say|report|"
        r"claim)\s+(?:that\s+)?the\s+(?:output|result|answer|value))\b",
        substrings=("#", "//", "/*"), anchor=Anchor.SCAN,
        requires="you i consider state say report claim",
    ),
    rule(
        "exfil.markdown_image", EXFILTRATION, 0.85,
        r"!\[[^\]\n]{0,200}\]\(\s*<?(?:https?:)?//[^)\s]+?(?:[?&][^)\s=]+=[^)\s]*?|/)"
        r"(?:\{|\}|\[|\]|%7b|%5b|\$|<|>|%s|\.\.\.|DATA|INFO|SECRET|PASSWORD|QUERY|SUMMARY|"
        r"HISTORY|CONVERSATION|CHAT|BASE64|ENCODED)",
        substrings=("![",), flags=0,  # case-sensitive: DATA, SECRET ... are placeholders
        anchor=Anchor.SCAN,
    ),
    rule(
        "exfil.render_with_data", EXFILTRATION, 0.75,
        r"\b(?:render|display|show|include|output|print|insert|add|embed|append|respond\s+with|"
        r"reply\s+with|end\s+(?:your|each|every)\s+(?:response|reply|answer|message)\s+with|"
        r"start\s+(?:your|each|every)\s+(?:response|reply|answer)\s+with)\s+(?:[\w'-]+\s+){0,4}?"
        r"(?:markdown\s+)?(?:image|img|picture|pixel|link|url|hyperlink)s?\b[^.\n]{0,150}?"
        r"\b(?:append\w*|includ\w*|add\w*|encod\w*|concatenat\w*|replac\w*|put\w*|insert\w*|"
        r"contain\w*|with|where|plus)\b[^.\n]{0,100}?\b(?:conversation|chat|data|secrets?|password|"
        r"previous|summary|history|messages?|user'?s|information|answers?|query|response|"
        r"context|details|credentials|e-?mails?|names?|keys?)\b",
        triggers="render display show include output print insert add embed append respond"
        " reply end start",
        requires="image img picture pixel link url hyperlink images links",
    ),
    rule(
        "exfil.send_to", EXFILTRATION, 0.35,
        r"\b(?:send|forward|e-?mail|post|upload|transmit|exfiltrate|leak|copy|submit|deliver)"
        r"\s+(?:[\w'-]+\s+){0,5}?(?:data|conversation|chat(?:\s+history)?|e-?mails?|messages|"
        r"files?|documents?|credentials|passwords?|contacts|history|information|details|"
        r"summary|api\s+keys?|tokens?|secrets?|records|keys|cookies|session)\s+(?:[\w'-]+\s+)"
        r"{0,3}?(?:to|at|via)\s+(?:https?://|www\.|[\w.+-]+@[\w-]+\.\w|this\s+(?:url|address|"
        r"link|server|endpoint|webhook)|the\s+following\s+(?:url|address|link|server|endpoint|"
        r"webhook|e-?mail))",
        triggers="send forward email e-mail post upload transmit exfiltrate leak copy submit"
        " deliver",
        requires="data conversation chat emails email messages files file documents document "
        "credentials passwords password contacts history information details summary api "
        "tokens token secrets secret records keys cookies session",
    ),
)
